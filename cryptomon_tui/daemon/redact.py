"""Moved to ``cryptomon_tui.redaction``; this name stays for cli/daemon_cmd.py and tests/fakes/daemon_harness.py."""

from cryptomon_tui.redaction import MASK, MIN_SECRET_LEN, Redactor, collect_secrets

__all__ = ["MASK", "MIN_SECRET_LEN", "Redactor", "collect_secrets"]
