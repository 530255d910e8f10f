"""Read a YAML config file into ``Config`` with errors a person can act on.

Every problem names the file, the dotted key path and (when known) the line, and all of
them are reported at once. ``${VAR}`` / ``${VAR:-default}`` pull secrets from the
environment; ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from yaml.nodes import Node

from cryptomon_tui.config.errors import ConfigError, ConfigProblem
from cryptomon_tui.config.exchanges import KIND_ALIASES, KNOWN_KINDS
from cryptomon_tui.config.paths import default_config_path
from cryptomon_tui.config.root import Config
from cryptomon_tui.config.safe_yaml import MAX_BYTES, YamlLimitError, compose_limited, load_limited
from cryptomon_tui.redaction import use_config

UNKNOWN_CONFIG_KEY = "unknown key (check the spelling; see sample_config.yaml for every option)"
_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def yaml_line_map(text: str, root: Node | None = None) -> dict[tuple[str, ...], int]:
    """Map key paths to 1-based line numbers using the YAML node tree (the simulator's scenarios use it too).

    Composed within the safe loader's limits (an alias bomb must not explode here either)."""
    lines: dict[tuple[str, ...], int] = {}
    if root is None:
        try:
            root = compose_limited(text)
        except (yaml.YAMLError, RecursionError, MemoryError):
            return lines

    def walk(node: Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value)
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, str(i))] = item.start_mark.line + 1
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return lines


def _interpolate(value: object, path: tuple[str, ...], problems: list[ConfigProblem], env: dict[str, str]) -> object:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, str(k)), problems, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, str(i)), problems, env) for i, v in enumerate(value)]
    if isinstance(value, str) and "$" in value:

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                ConfigProblem(
                    ".".join(path),
                    f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
                )
            )
            return ""

        return _ENV.sub(sub, value)
    return value


def pretty_loc(loc: tuple[object, ...]) -> tuple[str, ...]:
    """A pydantic error location as key path; drops the "function-after[...]" entries some validators add."""
    return tuple(str(p) for p in loc if not (isinstance(p, str) and ("[" in p and "]" in p)))


def line_of(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    """The line of ``path``, or of its nearest ancestor the YAML has (a missing key has no line of its own)."""
    for cut in range(len(path), 0, -1):
        line = lines.get(path[:cut])
        if line:
            return line
    return None


def validation_message(err: Mapping[str, object], unknown_key: str) -> str:
    """One pydantic error in words a person can act on, with the offending value when it is short."""
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return unknown_key
    if kind == "missing":
        return "required key is missing"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    given = err.get("input")
    if given is not None and not isinstance(given, dict | list):
        shown = repr(given)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"{msg} (got {shown})"
    return msg


def yaml_problem(exc: yaml.YAMLError) -> ConfigProblem:
    """A YAML syntax error as a problem with its line."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, YamlLimitError) or str(problem).startswith("duplicate key"):
        return ConfigProblem("", f"refused: {problem}", line)
    return ConfigProblem("", f"malformed YAML: {problem}", line)


def config_from_data(data: object, source: Path | str | None = None, text: str = "") -> Config:
    """Validate already-parsed data. Raises ConfigError listing every problem."""
    lines = yaml_line_map(text) if text else {}
    problems: list[ConfigProblem] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problem = ConfigProblem("", "the file must be a mapping of sections (exchanges:, probing:, ...)")
        raise ConfigError(source, [problem])
    data = _interpolate(data, (), problems, dict(os.environ))
    exchanges = data.get("exchanges") if isinstance(data, dict) else None
    if isinstance(exchanges, dict):
        for name, section in exchanges.items():
            kind = section.get("kind") if isinstance(section, dict) else None
            has_url = isinstance(section, dict) and bool(section.get("url"))
            if kind is None and str(name).lower() not in KIND_ALIASES and not has_url:
                problems.append(
                    ConfigProblem(
                        f"exchanges.{name}",
                        f"unknown exchange {name!r}: use one of {', '.join(KIND_ALIASES)}, or set kind: "
                        f"to one of {', '.join(KNOWN_KINDS)} (a generic target needs url:)",
                        lines.get(("exchanges", str(name))),
                    )
                )
    if problems:
        raise ConfigError(source, problems)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = pretty_loc(tuple(err.get("loc", ())))
            message = validation_message(dict(err), UNKNOWN_CONFIG_KEY)
            problems.append(ConfigProblem(".".join(loc), message, line_of(lines, loc)))
        raise ConfigError(source, problems) from None


def load_config(path: Path | str | None = None, *, required: bool = False) -> tuple[Config, Path | None]:
    """Load ``path`` or the default location. No file at the default location = defaults.

    Returns the config and the path it came from (None for built-in defaults).
    """
    explicit = path is not None
    cfg_path = Path(path).expanduser() if path is not None else default_config_path()
    if not cfg_path.exists():
        if explicit or required:
            raise ConfigError(cfg_path, [ConfigProblem("", "file not found")])
        use_config(None)
        return Config(), None
    text = read_config_text(cfg_path)
    try:
        data, _root = load_limited(text)
    except yaml.YAMLError as exc:
        raise ConfigError(cfg_path, [yaml_problem(exc)]) from None
    except (RecursionError, MemoryError):  # the limits should stop these first; never a traceback anyway
        problem = ConfigProblem("", "refused: the YAML is too large or too deeply nested")
        raise ConfigError(cfg_path, [problem]) from None
    config = config_from_data(data, cfg_path, text)
    # the loaded config's secrets are what the process-wide scrubber masks in everything kept, sent or shown
    use_config(config)
    return config, cfg_path


def read_config_text(cfg_path: Path) -> str:
    """The file's text, refusing one larger than the safe loader's limit before reading it all."""
    try:
        size = cfg_path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(cfg_path, [ConfigProblem(
                "", f"refused: the file is {size // 1024} KiB, over the {MAX_BYTES // 1024} KiB limit for a config")])
        with cfg_path.open(encoding="utf-8") as fh:
            text = fh.read(MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(cfg_path, [ConfigProblem("", f"cannot read the file: {exc}")]) from None
    if len(text) > MAX_BYTES:
        raise ConfigError(cfg_path, [ConfigProblem("", f"refused: the file is over {MAX_BYTES // 1024} KiB")])
    return text


_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|passphrase|api[_-]?key|webhook|routing[_-]?key|dsn|authorization|cookie)"
    r"|(^|_)(key|auth)$",
    re.I,
)
_ENV_ONLY = re.compile(r"^\s*(\$\{[^}]*\}\s*)+$")


def literal_secrets(data: object, path: tuple[str, ...] = ()) -> list[str]:
    """Key paths in the raw (not interpolated) YAML that hold a credential written out, not a ``${VAR}``:
    secret-named keys, every header of a generic target but a few harmless ones, and URLs with a password or
    a token-like query parameter."""
    from cryptomon_tui.config.exchanges import PUBLIC_HEADERS, url_secrets

    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            name = str(key)
            here = (*path, name)
            if path and path[-1] == "headers" and isinstance(value, str):
                if name.lower() not in PUBLIC_HEADERS and value.strip() and not _ENV_ONLY.match(value):
                    found.append(".".join(here))
            elif isinstance(value, str):
                if not value.strip() or _ENV_ONLY.match(value):
                    continue
                if _SECRET_KEY.search(name) or ("://" in value and any(
                        "${" not in s for s in url_secrets(value))):
                    found.append(".".join(here))
            else:
                found += literal_secrets(value, here)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            if isinstance(item, str) and "://" in item and any("${" not in s for s in url_secrets(item)):
                found.append(".".join((*path, str(i))))
            else:
                found += literal_secrets(item, (*path, str(i)))
    return found


def _secret_fields(node: object, path: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(dotted path, value) of every SecretStr in the loaded config (webhook URLs, channel tokens, keys)."""
    if isinstance(node, SecretStr):
        return [(".".join(path), node.get_secret_value())]
    if isinstance(node, BaseModel):
        out: list[tuple[str, str]] = []
        for name, info in type(node).model_fields.items():
            out += _secret_fields(getattr(node, name, None), (*path, info.alias or name))
        return out
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _secret_fields(v, (*path, str(k)))]
    if isinstance(node, list | tuple):
        return [item for i, v in enumerate(node) for item in _secret_fields(v, (*path, str(i)))]
    return []


def config_file_warnings(path: Path | None, config: Config) -> list[str]:
    """Warnings that do not stop the run: secrets written out in a file other users can read (credentials,
    LLM and channel keys, a generic target's auth headers, tokens in URLs). ``config check`` prints them and
    the daemon logs them at start."""
    warnings: list[str] = []
    if path is None:
        return warnings
    try:
        mode = path.stat().st_mode
    except OSError:
        return warnings
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return warnings
    try:
        text = read_config_text(path)
        raw, _ = load_limited(text)
    except (ConfigError, yaml.YAMLError, RecursionError, MemoryError):
        return warnings
    keys = literal_secrets(raw)
    keys += [k for k, value in _secret_fields(config) if len(value) >= 4 and value in text and k not in keys]
    if keys:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        warnings.append(
            f"{path} is readable by other users and holds secrets ({shown}): chmod 600 {path} "
            "or use ${ENV_VAR} references"
        )
    return warnings
