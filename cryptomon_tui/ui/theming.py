"""Themes: shipped YAML files in ``themes/`` plus the user's own in the config folder.

A broken theme file is reported (file + field) and skipped, never fatal. Every custom
variable the stylesheets use has a default derived from Textual's base colours, so Textual's
built-in themes work too.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from textual.color import Color, ColorParseError
from textual.theme import Theme

from cryptomon_tui.config.paths import user_themes_dir

DEFAULT_THEME = "cryptomon-dark"

# Custom variables used in the .tcss files, with defaults in terms of base theme variables.
APP_VARIABLE_DEFAULTS: dict[str, str] = {
    "status-ok": "$success",
    "status-degraded": "$warning",
    "status-down": "$error",
    "status-maintenance": "$primary",
    "status-banned": "$error",
    "status-paused": "$foreground-muted",
    "breaker-open": "$error",
    "breaker-half": "$warning",
    "spark-low": "$primary",
    "spark-high": "$error",
    "sev-critical": "$error",
    "sev-error": "$error",
    "sev-warning": "$warning",
    "sev-info": "$primary",
    # secondary text drawn through Content (table cells, status lines): a solid colour, because
    # Textual's $text-muted is "auto 60%", which Content cannot resolve and draws black
    "dim-text": "$foreground-darken-1",
    # pane borders: decorative, but they must still show (>= 3:1) at 256 and 16 colours
    "frame": "$foreground-darken-3",
}


class ThemeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    dark: bool = True
    primary: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)

    @field_validator("primary", "secondary", "accent", "warning", "error", "success", "foreground",
                     "background", "surface", "panel")
    @classmethod
    def _colour(cls, v: str | None) -> str | None:
        if v is not None:
            _parse_colour(v)
        return v

    @field_validator("variables")
    @classmethod
    def _variables(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not str(value).startswith("$"):
                try:
                    _parse_colour(str(value))
                except ValueError as exc:
                    raise ValueError(f"variables.{key}: {exc}") from None
        return v

    def to_theme(self) -> Theme:
        return Theme(
            name=self.name,
            primary=self.primary,
            secondary=self.secondary,
            accent=self.accent,
            warning=self.warning,
            error=self.error,
            success=self.success,
            foreground=self.foreground,
            background=self.background,
            surface=self.surface,
            panel=self.panel,
            dark=self.dark,
            variables=dict(self.variables),
        )


def _parse_colour(value: str) -> None:
    try:
        Color.parse(value)
    except ColorParseError as exc:
        raise ValueError(f"{value!r} is not a colour ({exc})") from None


@dataclass(frozen=True, slots=True)
class ThemeProblem:
    path: str
    message: str

    def render(self) -> str:
        return f"{self.path}: {self.message}"


def shipped_theme_files() -> list[Path]:
    """Theme files in the wheel (package data) or, in a checkout, the repo's ``themes/``."""
    found: list[Path] = []
    try:
        pkg = resources.files("cryptomon_tui").joinpath("themes")
        if pkg.is_dir():
            found = [Path(str(p)) for p in pkg.iterdir() if str(p).endswith((".yaml", ".yml"))]
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        found = []
    if not found:
        repo = Path(__file__).resolve().parents[2] / "themes"
        if repo.is_dir():
            found = sorted(repo.glob("*.y*ml"))
    return sorted(found)


def load_theme_file(path: Path) -> Theme:
    """Parse one file; raises ValueError with the file and field in the message."""
    try:
        data: object = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"malformed YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ValueError("a theme file must be a mapping with at least name: and primary:")
    try:
        return ThemeFile.model_validate(data).to_theme()
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc or '(file)'}: {str(err.get('msg', '')).removeprefix('Value error, ')}")
        raise ValueError("; ".join(parts)) from None


def load_themes(user_dir: Path | None = None) -> tuple[list[Theme], list[ThemeProblem]]:
    """Shipped themes, then user themes (a user theme may override a shipped one by name)."""
    themes: dict[str, Theme] = {}
    problems: list[ThemeProblem] = []
    folder = user_dir if user_dir is not None else user_themes_dir()
    user_files = sorted(folder.glob("*.y*ml")) if folder.is_dir() else []
    for path in [*shipped_theme_files(), *user_files]:
        try:
            theme = load_theme_file(path)
        except ValueError as exc:
            problems.append(ThemeProblem(str(path), str(exc)))
            continue
        themes[theme.name] = theme
    return list(themes.values()), problems
