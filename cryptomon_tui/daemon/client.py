"""Client library for the daemon's control API: used by the UI, ``cryptomon status`` and tests.

``DaemonClient`` keeps one connection, answers requests by id, keeps the latest pushed snapshot,
queues every pushed event for each ``events()`` iterator, and reconnects with exponential backoff
when the daemon restarts. Snapshot and event frames are read here, once, into the kernel's typed model
(``Snapshot.from_wire``, ``EventView.from_wire``: untrusted input, never raising), so every face reads
attributes; command replies stay JSON objects (``JsonObject``) for the caller to narrow.
``find_running_daemon`` and ``spawn_daemon`` implement the UI's attach-or-start logic; they block
briefly (local sockets only), so call them before the event loop runs or in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import logging
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from cryptomon_tui import __version__
from cryptomon_tui.clock import Clock, RealClock, wait_for
from cryptomon_tui.config.paths import state_dir
from cryptomon_tui.config.root import Config
from cryptomon_tui.daemon.address import DaemonAddress, address_from_config, untrusted_peer_reason
from cryptomon_tui.daemon.protocol import (
    HANDSHAKE_TIMEOUT_S,
    MAX_SERVER_FRAME,
    PROTOCOL_VERSION,
    Bye,
    ErrorFrame,
    Hello,
    Message,
    ProtocolError,
    Push,
    Response,
    Welcome,
    decode,
    encode,
)
from cryptomon_tui.kernel.events import EventView
from cryptomon_tui.kernel.history import HistoryAnswer
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_object
from cryptomon_tui.kernel.snapshot import Snapshot

log = logging.getLogger(__name__)


class DaemonError(Exception):
    """Base of every control-API client error; the message is meant for the user."""


class NoDaemonRunning(DaemonError):
    def __init__(self, address: DaemonAddress, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"no cryptomon daemon is running on {address.describe()}{extra}: start one with `cryptomon daemon`"
        )
        self.address = address


class VersionMismatch(DaemonError):
    pass


class AuthFailed(DaemonError):
    pass


class UntrustedDaemon(DaemonError):
    """The socket is served by another user's process (SO_PEERCRED): never send it anything."""


class ConnectionLost(DaemonError):
    pass


class DaemonStartFailed(DaemonError):
    pass


class CommandFailed(DaemonError):
    """The daemon refused a command; ``code`` is e.g. ``not_found``, ``invalid``, ``busy``, ``internal``."""

    def __init__(self, method: str, code: str, message: str) -> None:
        super().__init__(message or f"{method} failed ({code})")
        self.method = method
        self.code = code


def default_actor() -> str:
    """Who acknowledges or silences when the caller does not say: user@host."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _error_from_frame(frame: ErrorFrame, address: DaemonAddress) -> DaemonError:
    if frame.code == "version_mismatch":
        return VersionMismatch(frame.message)
    if frame.code == "auth_failed":
        return AuthFailed(f"the daemon on {address.describe()} refused the token: {frame.message}")
    return DaemonError(f"the daemon on {address.describe()} refused the connection: {frame.message} ({frame.code})")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: Welcome) -> None:
        self.reader = reader
        self.writer = writer
        self.welcome = welcome


async def _open_connection(
    address: DaemonAddress, client_name: str, clock: Clock, handshake_s: float = HANDSHAKE_TIMEOUT_S
) -> _Connection:
    try:
        if address.socket_path is not None:
            reader, writer = await asyncio.open_unix_connection(str(address.socket_path), limit=MAX_SERVER_FRAME)
        else:
            reader, writer = await asyncio.open_connection(address.host, address.port, limit=MAX_SERVER_FRAME)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise NoDaemonRunning(address, exc.strerror or "") from None
    except OSError as exc:
        raise NoDaemonRunning(address, exc.strerror or str(exc)) from None
    if address.socket_path is not None:
        reason = untrusted_peer_reason(writer.get_extra_info("socket"), address)
        if reason is not None:
            writer.close()
            raise UntrustedDaemon(reason)
    try:
        writer.write(encode(Hello(protocol=PROTOCOL_VERSION, client=client_name, token=address.token)))
        await writer.drain()
        line = await wait_for(clock, reader.readline(), handshake_s)
        if not line:
            raise DaemonError(f"the daemon on {address.describe()} closed the connection during the handshake")
        msg = decode(line)
        if isinstance(msg, ErrorFrame):
            raise _error_from_frame(msg, address)
        if not isinstance(msg, Welcome):
            raise DaemonError(f"unexpected first frame from {address.describe()}: {type(msg).__name__}")
        if msg.protocol != PROTOCOL_VERSION:
            raise VersionMismatch(
                f"the daemon speaks control protocol {msg.protocol}, this client ({__version__}) speaks "
                f"{PROTOCOL_VERSION}: use the same cryptomon version for both"
            )
        return _Connection(reader, writer, msg)
    except TimeoutError:
        writer.close()
        raise DaemonError(f"{address.describe()}: no answer to the handshake within {handshake_s:g}s") from None
    except (ConnectionError, OSError) as exc:
        writer.close()
        raise NoDaemonRunning(address, f"connection dropped during the handshake: {exc}") from None
    except ProtocolError as exc:
        writer.close()
        raise DaemonError(f"the daemon on {address.describe()} sent a malformed frame: {exc}") from None
    except BaseException:
        writer.close()
        raise


class DaemonClient:
    """One attached client. Use as ``async with DaemonClient(address) as client:``."""

    def __init__(
        self,
        address: DaemonAddress,
        *,
        client_name: str | None = None,
        clock: Clock | None = None,
        reconnect: bool = True,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.address = address
        self.client_name = client_name or f"cryptomon/{__version__} {default_actor()}"
        self.clock: Clock = clock or RealClock()
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_state = on_state
        self.state = "disconnected"  # connected | reconnecting | disconnected | closed
        self.reconnects = 0
        self._conn: _Connection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[JsonValue]]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._snapshot: Snapshot | None = None
        self._snapshot_changed = asyncio.Event()
        self._event_queues: list[asyncio.Queue[EventView]] = []
        self._state_changed = asyncio.Event()
        self._sub_hz = 0.0
        self._sub_events = False
        self._fatal: DaemonError | None = None
        self._closed = False
        self.last_bye: str | None = None

    # -- connection --

    @property
    def welcome(self) -> Welcome | None:
        return self._conn.welcome if self._conn else None

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._state_changed.set()
            self._state_changed = asyncio.Event()
            self._pulse_snapshot()  # wake snapshot iterators so they notice
            if self.on_state is not None:
                with contextlib.suppress(Exception):
                    self.on_state(state)

    def _pulse_snapshot(self) -> None:
        self._snapshot_changed.set()
        self._snapshot_changed = asyncio.Event()

    async def connect(self) -> Welcome:
        """Connect once; raises NoDaemonRunning / VersionMismatch / AuthFailed right away (no retry)."""
        if self._closed:
            raise DaemonError("this client was closed")
        self._conn = await _open_connection(self.address, self.client_name, self.clock)
        self._fatal = None
        self._set_state("connected")
        self._reader_task = asyncio.create_task(self._run(), name="daemon-client-reader")
        return self._conn.welcome

    async def close(self) -> None:
        self._closed = True
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None
        self._drop_connection(ConnectionLost("client closed"))
        self._set_state("closed")

    async def __aenter__(self) -> DaemonClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _drop_connection(self, error: DaemonError) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.writer.close()
        pending, self._pending = self._pending, {}
        for _method, fut in pending.values():
            if not fut.done():
                fut.set_exception(error)

    async def _run(self) -> None:
        """Read frames; on loss, reconnect with backoff (if enabled) and restore subscriptions."""
        while not self._closed:
            conn = self._conn
            if conn is not None:
                reason = await self._read_frames(conn)
                self._drop_connection(ConnectionLost(f"lost the connection to the daemon: {reason}"))
                log.info("daemon client: connection lost (%s)", reason)
            if self._closed:
                return
            if not self.reconnect:
                self._fatal = ConnectionLost(f"lost the connection to the daemon on {self.address.describe()}")
                self._set_state("disconnected")
                return
            self._set_state("reconnecting")
            delay = self.backoff_initial
            while not self._closed:
                await self.clock.sleep(delay * random.uniform(0.8, 1.2))
                try:
                    self._conn = await _open_connection(self.address, self.client_name, self.clock)
                except (VersionMismatch, AuthFailed) as exc:
                    self._fatal = exc
                    self._set_state("disconnected")
                    return
                except DaemonError:
                    delay = min(self.backoff_max, delay * 2)
                    continue
                self.reconnects += 1
                self._set_state("connected")
                if self._sub_hz or self._sub_events:
                    self._send_subscribe_nowait()
                break

    async def _read_frames(self, conn: _Connection) -> str:
        while True:
            try:
                line = await conn.reader.readline()
            except (ConnectionError, OSError) as exc:
                return str(exc) or type(exc).__name__
            except (ValueError, asyncio.LimitOverrunError):
                return "frame too large"
            if not line:
                return "the daemon closed the connection"
            try:
                msg = decode(line)
            except ProtocolError as exc:
                log.warning("daemon client: ignoring a malformed frame: %s", exc)
                continue
            self._handle(msg)
            if isinstance(msg, Bye):
                return f"daemon said: {msg.reason}"

    def _handle(self, msg: Message) -> None:
        if isinstance(msg, Response):
            entry = self._pending.pop(msg.id, None)
            if entry is None:
                return
            method, fut = entry
            if fut.done():
                return
            if msg.ok:
                fut.set_result(msg.result)
            else:
                fut.set_exception(CommandFailed(method, msg.error_code or "internal", msg.error_message or ""))
        elif isinstance(msg, Push):
            # the typed models read untrusted frames without raising: a bad field reads as its default
            if msg.kind == "snapshot":
                self._snapshot = Snapshot.from_wire(msg.data)
                self._pulse_snapshot()
            else:
                event = EventView.from_wire(msg.data)
                for queue in self._event_queues:
                    queue.put_nowait(event)
        elif isinstance(msg, Bye):
            self.last_bye = msg.reason
        elif isinstance(msg, ErrorFrame):
            log.warning("daemon client: daemon reported %s: %s", msg.code, msg.message)

    # -- requests --

    async def request(
        self, method: str, params: JsonObject | None = None, wait_s: float | None = None
    ) -> JsonValue:
        """Send one command and wait for its answer. Raises CommandFailed or ConnectionLost."""
        conn = self._conn
        if conn is None or self.state != "connected":
            if self._fatal is not None:
                raise self._fatal
            raise ConnectionLost(f"not connected to the daemon on {self.address.describe()} ({self.state})")
        rid = next(self._ids)
        fut: asyncio.Future[JsonValue] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (method, fut)
        try:
            conn.writer.write(encode({"type": "request", "id": rid, "method": method, "params": params or {}}))
            await conn.writer.drain()
        except (ConnectionError, OSError) as exc:
            self._pending.pop(rid, None)
            raise ConnectionLost(f"lost the connection to the daemon: {exc}") from None
        if wait_s is None:
            return await fut
        try:
            return await wait_for(self.clock, fut, wait_s)
        except TimeoutError:
            self._pending.pop(rid, None)
            raise DaemonError(f"{method}: no answer from the daemon within {wait_s:g}s") from None

    async def _command(self, method: str, params: JsonObject | None = None) -> JsonObject:
        """A command's answer, which is always a JSON object; anything else is the daemon's fault."""
        result = as_object(await self.request(method, params))
        if result is None:
            raise DaemonError(f"{method}: the daemon's answer is not a JSON object")
        return result

    async def ping(self) -> JsonObject:
        return await self._command("ping")

    async def snapshot(self) -> Snapshot:
        """The daemon's snapshot now, typed (``request("snapshot")`` gives the frame as sent)."""
        return Snapshot.from_wire(await self._command("snapshot"))

    async def health(self) -> JsonObject:
        return await self._command("health")

    async def ack(self, incident_id: str, note: str | None = None, by: str | None = None) -> JsonObject:
        params: JsonObject = {"incident_id": incident_id, "note": note, "by": by or default_actor()}
        return await self._command("ack", params)

    async def silence(
        self, matchers: Sequence[JsonObject], duration_s: float | None, comment: str, by: str | None = None
    ) -> JsonObject:
        params: JsonObject = {"matchers": list[JsonValue](matchers), "duration_s": duration_s, "comment": comment,
                              "by": by or default_actor()}
        return await self._command("silence", params)

    async def unsilence(self, silence_id: str, by: str | None = None) -> JsonObject:
        return await self._command("unsilence", {"silence_id": silence_id, "by": by or default_actor()})

    async def analyze(self, incident_id: str, force: bool = False, offline: bool = False) -> JsonObject:
        params: JsonObject = {"incident_id": incident_id, "force": force, "offline": offline}
        return await self._command("analyze", params)

    async def history(
        self,
        exchange: str,
        since: float,
        until: float,
        resolution_s: float,
        probe: str | None = None,
        recent: int = 0,
    ) -> HistoryAnswer:
        """Chart points (and the newest ``recent`` raw results) from the daemon's store, read as untrusted
        (``HistoryAnswer.from_wire`` never raises; junk points are dropped, numbers bounded)."""
        params: JsonObject = {"exchange": exchange, "since": since, "until": until,
                              "resolution_s": resolution_s, "recent": recent}
        if probe is not None:
            params["probe"] = probe
        return HistoryAnswer.from_wire(await self.request("history", params))

    async def maintenance_add(
        self,
        exchange: str | None,
        starts_at: float,
        ends_at: float,
        comment: str = "",
        recurrence: str | None = None,
        timezone: str = "UTC",
        by: str | None = None,
    ) -> JsonObject:
        params: JsonObject = {"exchange": exchange, "starts_at": starts_at, "ends_at": ends_at, "comment": comment,
                              "recurrence": recurrence, "timezone": timezone, "by": by or default_actor()}
        return await self._command("maintenance_add", params)

    async def maintenance_remove(self, window_id: str, by: str | None = None) -> JsonObject:
        return await self._command("maintenance_remove", {"window_id": window_id, "by": by or default_actor()})

    async def summary(self, since_s: float | None = None, offline: bool = False) -> JsonObject:
        params: JsonObject = {}
        if since_s is not None:
            params["since_s"] = since_s
        if offline:
            params["offline"] = True
        return await self._command("summary", params)

    async def pause(self, exchange: str) -> JsonObject:
        return await self._command("pause", {"exchange": exchange})

    async def resume(self, exchange: str) -> JsonObject:
        return await self._command("resume", {"exchange": exchange})

    async def reload(self) -> JsonObject:
        return await self._command("reload")

    async def shutdown(self) -> JsonObject:
        """Ask the daemon to stop (used by a UI that started its own daemon and the user chose to stop it)."""
        return await self._command("shutdown")

    async def subscribe(self, snapshot_hz: float = 0.0, events: bool = False) -> JsonObject:
        self._sub_hz = snapshot_hz
        self._sub_events = events
        return await self._command("subscribe", {"snapshot_hz": snapshot_hz, "events": events})

    def _send_subscribe_nowait(self) -> None:
        conn = self._conn
        if conn is None:
            return
        rid = next(self._ids)
        fut: asyncio.Future[JsonValue] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        self._pending[rid] = ("subscribe", fut)
        params = {"snapshot_hz": self._sub_hz, "events": self._sub_events}
        conn.writer.write(encode({"type": "request", "id": rid, "method": "subscribe", "params": params}))

    # -- streams --

    @property
    def latest_snapshot(self) -> Snapshot | None:
        return self._snapshot

    async def snapshots(self, hz: float = 2.0) -> AsyncIterator[Snapshot]:
        """Each new snapshot the daemon pushes (at most ``hz`` a second). Skips stale ones; never ends
        while reconnecting; raises the fatal error when the daemon becomes unusable."""
        if hz > self._sub_hz:
            await self.subscribe(hz, self._sub_events)
        last: Snapshot | None = None
        while True:
            snap = self._snapshot
            if snap is not None and (last is None or snap.seq != last.seq):
                last = snap
                yield snap
                continue
            if self._fatal is not None:
                raise self._fatal
            if self._closed:
                return
            await self._snapshot_changed.wait()

    async def events(self) -> AsyncIterator[EventView]:
        """Every incident event pushed while connected, in order (none are dropped on this side)."""
        queue: asyncio.Queue[EventView] = asyncio.Queue()
        self._event_queues.append(queue)
        try:
            if not self._sub_events:
                await self.subscribe(self._sub_hz, True)
            while True:
                if queue.empty():
                    if self._fatal is not None:
                        raise self._fatal
                    if self._closed:
                        return
                    getter = asyncio.ensure_future(queue.get())
                    state_wait = asyncio.ensure_future(self._state_changed.wait())
                    try:
                        await asyncio.wait({getter, state_wait}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        state_wait.cancel()
                    if getter.done():
                        yield getter.result()
                    else:
                        getter.cancel()
                    continue
                yield queue.get_nowait()
        finally:
            self._event_queues.remove(queue)


# -- attach-or-start helpers (blocking, local sockets only) --


def probe_daemon(address: DaemonAddress, timeout: float = 1.0) -> Welcome:
    """Synchronous hello/welcome round trip. Raises NoDaemonRunning, VersionMismatch, AuthFailed."""
    try:
        if address.socket_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: str | tuple[str | None, int | None] = str(address.socket_path)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (address.host, address.port)
    except OSError as exc:
        raise NoDaemonRunning(address, str(exc)) from None
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect(target)
            if address.socket_path is not None and (reason := untrusted_peer_reason(sock, address)) is not None:
                raise UntrustedDaemon(reason)
            sock.sendall(encode(Hello(protocol=PROTOCOL_VERSION, client="cryptomon-probe", token=address.token)))
            buf = b""
            while b"\n" not in buf and len(buf) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NoDaemonRunning(address, exc.strerror or "") from None
        except TimeoutError:
            raise NoDaemonRunning(address, f"no answer within {timeout:g}s") from None
        except OSError as exc:
            raise NoDaemonRunning(address, exc.strerror or str(exc)) from None
    if b"\n" not in buf:
        raise NoDaemonRunning(address, "closed without a welcome")
    try:
        msg = decode(buf.split(b"\n", 1)[0])
    except ProtocolError as exc:
        raise DaemonError(f"{address.describe()} does not speak the cryptomon control protocol: {exc}") from None
    if isinstance(msg, ErrorFrame):
        raise _error_from_frame(msg, address)
    if not isinstance(msg, Welcome):
        raise DaemonError(f"{address.describe()} answered with {type(msg).__name__} instead of a welcome")
    return msg


def find_running_daemon(config: Config, timeout: float = 1.0) -> DaemonAddress | None:
    """The address of a daemon that answers for this config, or None when none runs.

    A daemon that answers but refuses us (other version, wrong token) raises instead: starting a
    second one would only fail on the same address.
    """
    address = address_from_config(config)
    try:
        probe_daemon(address, timeout)
    except NoDaemonRunning:
        return None
    return address


def daemon_log_path() -> Path:
    return state_dir() / "daemon.log"


def spawn_daemon(
    config_path: str | Path | None,
    demo: str | None = None,
    *,
    config: Config | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 15.0,
    python: str | None = None,
    command: Sequence[str] | None = None,
) -> DaemonAddress:
    """Start ``python -m cryptomon_tui daemon`` detached (own session, output to the state-dir log)
    and return its address once it answers. Raises DaemonStartFailed with the log's last lines.

    ``command`` replaces ``python -m cryptomon_tui daemon`` (tests start a harness with it)."""
    if config is None:
        from cryptomon_tui.config.loader import load_config

        config, _ = load_config(config_path)
    address = address_from_config(config)
    cmd = list(command) if command is not None else [python or sys.executable, "-m", "cryptomon_tui", "daemon"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    if demo is not None:
        cmd += ["--demo", demo]
    cmd += list(extra_args)
    log_path = daemon_log_path()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        os.chmod(log_path, 0o600)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            # Lost a race with another starter: use theirs.
            try:
                probe_daemon(address, 0.5)
                return address
            except NoDaemonRunning:
                pass
            raise DaemonStartFailed(f"the daemon exited with code {code}:\n{_log_tail(log_path)}")
        try:
            probe_daemon(address, 0.5)
            return address
        except NoDaemonRunning:
            time.sleep(0.05)
    raise DaemonStartFailed(
        f"the daemon did not answer on {address.describe()} within {timeout:g}s (pid {proc.pid}, log {log_path}):\n"
        f"{_log_tail(log_path)}"
    )


def attach_or_start(
    config: Config,
    config_path: str | Path | None = None,
    demo: str | None = None,
    *,
    timeout: float = 15.0,
    command: Sequence[str] | None = None,
) -> tuple[DaemonAddress, bool]:
    """The address of the running daemon, or of one started now; the flag says whether we started it
    (a UI that started its own daemon asks on quit whether to keep it running)."""
    address = find_running_daemon(config)
    if address is not None:
        return address, False
    return spawn_daemon(config_path, demo, config=config, timeout=timeout, command=command), True


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
