"""The ``daemon:`` and ``ui:`` sections (control API, metrics, logging, themes, keys)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from cryptomon_tui.config.base import Section
from cryptomon_tui.kernel.units import Duration, duration_range


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ControlConfig(Section):
    """Where UIs and ``cryptomon status`` reach the daemon: a Unix socket, or loopback TCP with a token."""

    transport: Literal["unix", "tcp"] = "unix"
    socket_path: Path | None = None  # default: platformdirs runtime folder / cryptomon.sock
    host: str = "127.0.0.1"
    port: int = Field(default=9465, ge=0, le=65535)  # 0 = any free port (tests)
    token: SecretStr | None = None  # required with transport: tcp (write it as ${CRYPTOMON_TOKEN})
    allow_remote: bool = False  # TCP on a non-loopback address: only behind your own TLS tunnel/VPN
    max_clients: int = Field(default=32, ge=1)
    # Connections that have not finished the hello yet; beyond it the oldest is dropped (no fd exhaustion).
    max_pending_handshakes: int = Field(default=64, ge=1, le=10_000)
    # Events a client may have queued before the daemon disconnects it (events are never dropped).
    max_event_backlog: int = Field(default=10_000, ge=100)

    @model_validator(mode="after")
    def _tcp_needs_token(self) -> ControlConfig:
        if self.transport == "tcp":
            if self.token is None or len(self.token.get_secret_value()) < 16:
                raise ValueError("transport: tcp needs token: with at least 16 characters (e.g. ${CRYPTOMON_TOKEN})")
            if not _is_loopback(self.host) and not self.allow_remote:
                raise ValueError(f"host {self.host!r} is not loopback: set allow_remote: true to expose it")
        return self


class HttpConfig(Section):
    """Prometheus /metrics, /healthz, /readyz and a read-only /api/v1/snapshot."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)  # 0 = any free port (tests)
    # Host header values accepted besides loopback names and ``host`` (DNS rebinding: a web page in a
    # browser on this machine must not read /metrics or the snapshot), e.g. ["monitor.internal"].
    allowed_hosts: list[str] = Field(default_factory=list, max_length=64)
    # When set, /api/v1/snapshot needs ``Authorization: Bearer <token>`` (other local users can reach the port).
    snapshot_token: SecretStr | None = None


class LogConfig(Section):
    format: Literal["text", "json"] = "text"  # json: one object per line for journald/Loki/ELK
    level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v


class ReloadConfig(Section):
    """Re-read the config file when it changes (SIGHUP always works)."""

    watch: bool = True
    interval: Annotated[Duration, duration_range(0.1, 3600.0)] = 2.0


class DaemonConfig(Section):
    location: str = Field(default="local", min_length=1, max_length=64)
    control: ControlConfig = Field(default_factory=ControlConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    reload: ReloadConfig = Field(default_factory=ReloadConfig)


class UiConfig(Section):
    """The Textual monitor. The theme picked in the app is remembered in the state folder and wins
    over ``theme`` here until changed again; ``--theme`` wins over both."""

    theme: str = "cryptomon-dark"
    # Screen updates per second (1-4). Each update costs UI CPU (measured in bench/RESULTS.md);
    # 1 is plenty for humans and slow SSH links. Probing runs in the daemon and is unaffected.
    refresh_hz: float = Field(default=1.0, ge=1.0, le=4.0)
    mouse: bool = True  # false: no mouse reporting (saves bandwidth over SSH; every action has a key)
    # Binding id -> keys, e.g. {"acknowledge": "A", "quit": "q,ctrl+q"} (ids: `cryptomon run` then `?`).
    keymap: dict[str, str] = Field(default_factory=dict)
    # Quitting a UI that started its own daemon: ask, keep it monitoring in the background, or stop it.
    on_quit: Literal["ask", "keep", "stop"] = "ask"
