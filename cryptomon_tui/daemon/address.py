"""Where a daemon listens: a Unix socket path, or loopback host/port plus a token."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cryptomon_tui.config.paths import runtime_dir
from cryptomon_tui.config.root import Config

SOCKET_NAME = "cryptomon.sock"


def default_socket_path() -> Path:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (cron, containers) and falls back to /tmp/runtime-UID.
        warnings.simplefilter("ignore")
        return runtime_dir() / SOCKET_NAME


@dataclass(frozen=True, slots=True)
class DaemonAddress:
    socket_path: Path | None = None
    host: str | None = None
    port: int | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def is_unix(self) -> bool:
        return self.socket_path is not None

    def describe(self) -> str:
        """For messages: never includes the token."""
        if self.socket_path is not None:
            return f"unix socket {self.socket_path}"
        return f"tcp {self.host}:{self.port}"


def address_from_config(config: Config) -> DaemonAddress:
    control = config.daemon.control
    if control.transport == "tcp":
        token = control.token.get_secret_value() if control.token is not None else None
        return DaemonAddress(host=control.host, port=control.port, token=token)
    path = Path(control.socket_path).expanduser() if control.socket_path else default_socket_path()
    return DaemonAddress(socket_path=path)
