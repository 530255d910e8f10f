"""The CLI's last line of defence: everything a command prints passes the process-wide scrubber.

Commands print exchange messages, LLM replies, receivers' answers and incident text. Each of those is
scrubbed where it enters, but a new command or a new field must not be able to forget it: the standard
streams of every non-interactive command are wrapped so that no configured secret (raw, URL-encoded,
base64) and no terminal control (escape sequences, C0/C1, bidi overrides; newline and tab kept) reaches
the terminal, a pipe or a file. The Textual commands draw with escape sequences of their own and are not
wrapped (the UI cleans text in ``ui/present.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from cryptomon_tui.redaction import scrub


class SafeStream:
    """A text stream whose ``write`` scrubs; every other attribute is the wrapped stream's."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(scrub(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def install() -> None:
    """Wrap stdout and stderr (idempotent)."""
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout)
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr)


def uninstall() -> None:
    if isinstance(sys.stdout, SafeStream):
        sys.stdout = sys.stdout._inner
    if isinstance(sys.stderr, SafeStream):
        sys.stderr = sys.stderr._inner
