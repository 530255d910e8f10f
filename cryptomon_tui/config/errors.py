"""Config errors that name the file, the key path and what was expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    key: str  # dotted path, e.g. "exchanges.binance.interval" ("" for the whole file)
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        key = self.key or "(file)"
        return f"{where}: {key}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found, never a traceback for the user."""

    def __init__(self, source: Path | str | None, problems: list[ConfigProblem]) -> None:
        self.source = str(source) if source is not None else "<defaults>"
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"config error in {self.source}:"]
        lines += ["  " + p.render(self.source) for p in self.problems]
        return "\n".join(lines)
