"""Where a daemon listens: a Unix socket path, or loopback host/port plus a token."""

from __future__ import annotations

import os
import socket
import stat
import struct
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


class UnsafeRuntimeDir(Exception):
    """The socket's folder could be controlled by another local user: the message says why and how to fix it."""


def _trusted_owner(uid: int) -> bool:
    return uid in (os.getuid(), 0)


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` (and missing parents) with mode 0700, then refuse it unless it is safe for a socket.

    Another local user who owns the folder, or any folder above it, can swap in a socket of their own and
    impersonate the daemon (``/tmp/runtime-<uid>`` can be created first by anyone). So: the folder must be
    a real directory owned by us with mode 0700, and every folder above it owned by us or root and not
    writable by others unless it is root's sticky /tmp-like folder.
    """
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for part in reversed(missing):
        try:
            part.mkdir(mode=0o700)
        except FileExistsError:  # created meanwhile (maybe by someone else): checked below
            pass
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeRuntimeDir(f"runtime folder {folder} is a symlink: remove it (or set daemon.control.socket_path)")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeRuntimeDir(f"runtime folder {folder} is not a directory: remove it")
    if st.st_uid != os.getuid():
        raise UnsafeRuntimeDir(
            f"runtime folder {folder} is owned by uid {st.st_uid}, not by this user (uid {os.getuid()}): "
            "another user may have created it to impersonate the daemon; remove it, or set XDG_RUNTIME_DIR "
            "or daemon.control.socket_path to a private folder"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise UnsafeRuntimeDir(
            f"runtime folder {folder} has mode {stat.S_IMODE(st.st_mode):04o}, others can reach the socket: "
            f"run `chmod 700 {folder}`"
        )
    for parent in folder.parents:
        pst = os.stat(parent)
        if not _trusted_owner(pst.st_uid):
            raise UnsafeRuntimeDir(
                f"{parent} (above the runtime folder {folder}) is owned by uid {pst.st_uid}: another user "
                "could replace the folder; use XDG_RUNTIME_DIR or daemon.control.socket_path elsewhere"
            )
        writable_by_others = stat.S_IMODE(pst.st_mode) & 0o022
        if writable_by_others and not (pst.st_uid == 0 and pst.st_mode & stat.S_ISVTX):
            raise UnsafeRuntimeDir(
                f"{parent} (above the runtime folder {folder}) is writable by other users: another user could "
                "replace the folder; use XDG_RUNTIME_DIR or daemon.control.socket_path elsewhere"
            )


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED), None where unsupported."""
    if not hasattr(socket, "SO_PEERCRED"):  # pragma: no cover - Linux has it
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def untrusted_peer_reason(sock: socket.socket, address: DaemonAddress) -> str | None:
    """Why the daemon behind ``sock`` must not be trusted (another user's process), or None when it is ours."""
    uid = peer_uid(sock)
    if uid is None or _trusted_owner(uid):
        return None
    return (
        f"the socket {address.socket_path} is served by uid {uid}, not by this user (uid {os.getuid()}): "
        "another local user may be impersonating the daemon; refusing to talk to it"
    )
