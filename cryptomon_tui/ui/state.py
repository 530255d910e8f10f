"""What the UI remembers between runs (theme, quit choice): a small JSON file in the state folder.

Never fatal: an unreadable or corrupt file is treated as empty and rewritten on the next change.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptomon_tui.config.paths import state_dir

STATE_FILE = "ui.json"
QUIT_CHOICES = ("keep", "stop")


@dataclass
class UiState:
    theme: str | None = None
    on_quit: str | None = None  # "keep" | "stop" once the user ticked "remember"

    @classmethod
    def path(cls) -> Path:
        return state_dir() / STATE_FILE

    @classmethod
    def load(cls, path: Path | None = None) -> UiState:
        target = path or cls.path()
        try:
            data: object = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        theme = data.get("theme")
        on_quit = data.get("on_quit")
        return cls(
            theme=theme if isinstance(theme, str) and theme else None,
            on_quit=on_quit if on_quit in QUIT_CHOICES else None,
        )

    def save(self, path: Path | None = None) -> bool:
        """Atomic write; False (never an exception) when the folder is not writable."""
        target = path or self.path()
        tmp: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".ui-", dir=target.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(self), fh)
            os.replace(tmp, target)
            return True
        except OSError:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return False
