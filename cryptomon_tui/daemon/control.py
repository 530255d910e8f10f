"""The daemon's control API server: snapshots, the incident event stream and commands for attached clients.

Slow or dead clients never hold the daemon back: everything sent to a client goes through its own
bounded queues and its own writer task. Snapshots are latest-only (a newer one replaces an unsent
one); events are never dropped: a client whose event backlog passes ``max_event_backlog`` is
disconnected with a reason instead, and reconnects to a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import logging
import os
import socket
import stat
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from cryptomon_tui import __version__
from cryptomon_tui.clock import Clock, wait_for
from cryptomon_tui.config.root import Config
from cryptomon_tui.daemon.address import DaemonAddress, UnsafeRuntimeDir, address_from_config, ensure_private_dir
from cryptomon_tui.daemon.protocol import (
    HANDSHAKE_TIMEOUT_S,
    MAX_CLIENT_FRAME,
    MAX_SNAPSHOT_HZ,
    MIN_SNAPSHOT_HZ,
    PROTOCOL_VERSION,
    Bye,
    ErrorFrame,
    Hello,
    Message,
    ProtocolError,
    Push,
    Request,
    Response,
    Welcome,
    decode,
    encode,
    validate_params,
)
from cryptomon_tui.engine.api import CommandError, EngineAPI, ReloadResult
from cryptomon_tui.kernel.history import HistoryAnswer
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, finite, integer, objects, text
from cryptomon_tui.redaction import Redactor, collect_secrets

log = logging.getLogger(__name__)

SNAPSHOT_TICK_S = 0.05
MAX_INFLIGHT_PER_CLIENT = 32
MAX_PENDING_RESPONSES = 1_000
WRITE_BATCH_BYTES = 256 * 1024
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the NUL


class ControlServerError(Exception):
    """The control API cannot start (address in use, bad socket path ...)."""


class DaemonAlreadyRunning(ControlServerError):
    def __init__(self, address: DaemonAddress) -> None:
        super().__init__(
            f"a cryptomon daemon is already running on {address.describe()}: attach with `cryptomon attach` "
            "or stop it first"
        )
        self.address = address


class _CountedLog:
    """Logs an event at most once a minute with a count, so a client loop (token guessing, idle connections)
    cannot fill the disk with one line per attempt."""

    PERIOD_S = 60.0

    def __init__(self, clock: Clock, what: str) -> None:
        self.clock = clock
        self.what = what
        self.total = 0
        self._unlogged = 0
        self._last_logged: float | None = None

    def note(self, reason: str) -> None:
        self.total += 1
        self._unlogged += 1
        now = self.clock.monotonic()
        if self._last_logged is not None and now - self._last_logged < self.PERIOD_S:
            return
        log.warning("control: %s %d time(s) (%s) since the last report", self.what, self._unlogged, reason)
        self._unlogged = 0
        self._last_logged = now


class _Client:
    """One attached connection: its subscriptions and outgoing queues."""

    def __init__(self, server: ControlServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.name = "?"
        self.responses: deque[bytes] = deque()
        self.events: deque[bytes] = deque()
        self.snapshot: bytes | None = None
        self.wake = asyncio.Event()
        self.snapshot_hz = 0.0
        self.next_snapshot_due = 0.0
        self.last_seq: object = None
        self.want_events = False
        self.closing = False
        self.inflight: set[asyncio.Task[None]] = set()
        self.sent_frames = 0
        self.dropped_snapshots = 0

    # -- queues (called from the daemon's tasks; never block) --

    def offer_event(self, frame: bytes) -> None:
        if self.closing:
            return
        if len(self.events) >= self.server.max_event_backlog:
            self.kick(
                f"event backlog passed {self.server.max_event_backlog} (client not reading): reconnect to resync"
            )
            return
        self.events.append(frame)
        self.wake.set()

    def offer_snapshot(self, frame: bytes, seq: object) -> None:
        if self.closing:
            return
        if self.snapshot is not None:
            self.dropped_snapshots += 1
        self.snapshot = frame
        self.last_seq = seq
        self.wake.set()

    def offer_response(self, frame: bytes) -> None:
        if self.closing:
            return
        if len(self.responses) >= MAX_PENDING_RESPONSES:
            self.kick("too many unread responses (client not reading)")
            return
        self.responses.append(frame)
        self.wake.set()

    def kick(self, reason: str, level: int = logging.WARNING) -> None:
        """Disconnect now with a reason; the bye frame is best effort (the client may not be reading)."""
        if self.closing:
            return
        log.log(level, "control: disconnecting client %s: %s", self.name, reason)
        self.closing = True
        self.responses.clear()
        self.events.clear()
        self.snapshot = None
        transport = self.writer.transport
        with contextlib.suppress(Exception):
            if transport.get_write_buffer_size() < WRITE_BATCH_BYTES:
                transport.write(self.server.frame(Bye(reason)))
        with contextlib.suppress(Exception):
            transport.abort() if transport.get_write_buffer_size() else transport.close()
        self.wake.set()

    # -- tasks --

    async def write_loop(self) -> None:
        writer = self.writer
        try:
            while not self.closing:
                await self.wake.wait()
                self.wake.clear()
                while not self.closing:
                    batch: list[bytes] = []
                    size = 0
                    while size < WRITE_BATCH_BYTES and (self.responses or self.events):
                        frame = self.responses.popleft() if self.responses else self.events.popleft()
                        batch.append(frame)
                        size += len(frame)
                    if size < WRITE_BATCH_BYTES and self.snapshot is not None:
                        batch.append(self.snapshot)
                        self.snapshot = None
                    if not batch:
                        break
                    writer.writelines(batch)
                    self.sent_frames += len(batch)
                    await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closing = True

    async def send_now(self, msg: Message) -> None:
        """Before the writer task runs (handshake): write and drain, bounded by the handshake timeout."""
        self.writer.write(self.server.frame(msg))
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            await wait_for(self.server.clock, self.writer.drain(), HANDSHAKE_TIMEOUT_S)


class ControlServer:
    """Serves one engine to any number of clients over a Unix socket or loopback TCP with a token."""

    def __init__(
        self,
        engine: EngineAPI,
        config: Config,
        clock: Clock,
        *,
        address: DaemonAddress | None = None,
        redactor: Redactor | None = None,
        on_shutdown: Callable[[], None] | None = None,
        on_reload: Callable[[], Awaitable[ReloadResult]] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.address = address or address_from_config(config)
        control = config.daemon.control
        self.max_clients = control.max_clients
        self.max_event_backlog = control.max_event_backlog
        self.max_pending = control.max_pending_handshakes
        self._pending: dict[_Client, None] = {}  # connections still in the handshake, oldest first
        self.dropped_pending = 0
        self._auth_failures = _CountedLog(clock, "refused a client without a valid token")
        self._dropped_log = _CountedLog(clock, "dropped a connection that had not said hello")
        self._token = self.address.token
        if not self.address.is_unix and not self._token:
            raise ControlServerError("the TCP control API needs daemon.control.token")
        self.redactor = redactor or Redactor(collect_secrets(config))
        self.clients: set[_Client] = set()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._client_tasks: set[asyncio.Task[None]] = set()
        self._lock_fd: int | None = None
        self._socket_inode: int | None = None
        self.events_fanned_out = 0
        self._on_shutdown = on_shutdown
        # the daemon's reload (engine, then its own secrets, location and HTTP config); the engine's alone when
        # the control server runs without a daemon around it
        self._on_reload = on_reload

    # -- lifecycle --

    async def start(self) -> None:
        if self.address.socket_path is not None:
            path = self.address.socket_path
            await asyncio.to_thread(self._claim_socket_path, path)
            try:
                self._server = await asyncio.start_unix_server(self._on_connect, path=str(path), limit=MAX_CLIENT_FRAME)
                os.chmod(path, 0o600)
                self._socket_inode = os.stat(path).st_ino
            except BaseException:
                self._release_lock()
                raise
            log.info("control API listening on unix socket %s", path)
        else:
            try:
                self._server = await asyncio.start_server(
                    self._on_connect, host=self.address.host, port=self.address.port, limit=MAX_CLIENT_FRAME
                )
            except OSError as exc:
                raise ControlServerError(f"cannot listen on {self.address.describe()}: {exc.strerror or exc}") from None
            port = self._server.sockets[0].getsockname()[1]
            self.address = DaemonAddress(host=self.address.host, port=port, token=self._token)
            log.info("control API listening on tcp %s:%s (token required)", self.address.host, port)
        self._tasks = [
            asyncio.create_task(self._event_pump(), name="control-events"),
            asyncio.create_task(self._snapshot_pump(), name="control-snapshots"),
        ]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self.clients):
            client.kick("daemon shutting down", logging.INFO)
        for task in self._tasks + list(self._client_tasks):
            task.cancel()
        for task in self._tasks + list(self._client_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        path = self.address.socket_path
        if path is not None and self._socket_inode is not None:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == self._socket_inode:
                    os.unlink(path)
            self._socket_inode = None
        self._release_lock()

    def set_config(self, config: Config) -> None:
        """After a reload: new secrets to mask. The listening address changes only on restart."""
        self.config = config
        self.redactor.set_secrets(collect_secrets(config))

    # -- socket path ownership --

    def _claim_socket_path(self, path: Path) -> None:
        """Take the socket path: refuse when a live daemon holds it, replace a dead daemon's leftover."""
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise ControlServerError(
                f"socket path {path} is longer than {UNIX_PATH_MAX} bytes: set daemon.control.socket_path shorter"
            )
        try:
            ensure_private_dir(path.parent)
        except UnsafeRuntimeDir as exc:
            raise ControlServerError(str(exc)) from None
        lock_path = path.with_name(path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DaemonAlreadyRunning(self.address) from None
        self._lock_fd = fd
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            self._release_lock()
            raise ControlServerError(f"{path} exists and is not a socket: remove it or set daemon.control.socket_path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("control: removing stale socket %s left by a daemon that is gone", path)
            path.unlink(missing_ok=True)
            return
        except OSError:
            pass
        finally:
            probe.close()
        # Someone answers although we hold the lock: a daemon that does not use the lock file.
        self._release_lock()
        raise DaemonAlreadyRunning(self.address)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    # -- framing --

    def frame(self, msg: Message | Mapping[str, object]) -> bytes:
        data = encode(msg)
        if self.redactor.secrets:
            text = data.decode("utf-8")
            if self.redactor.contains_secret(text):
                data = self.redactor.redact_secrets(text).encode("utf-8")
        return data

    # -- pumps shared by all clients --

    async def _event_pump(self) -> None:
        while True:
            try:
                async for event in self.engine.subscribe_events():
                    frame = self.frame(Push("event", event.to_wire()))
                    self.events_fanned_out += 1
                    for client in list(self.clients):
                        if client.want_events:
                            client.offer_event(frame)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control: the engine's event stream failed; resubscribing")
                await self.clock.sleep(1.0)

    async def _snapshot_pump(self) -> None:
        last_logged = -1e18
        while True:
            try:
                self.push_due_snapshots()
            except Exception:
                # 20 ticks a second: log a persistent failure once a minute, not 20 times a second.
                now = self.clock.monotonic()
                if now - last_logged >= 60.0:
                    last_logged = now
                    log.exception("control: building a snapshot failed")
            await self.clock.sleep(SNAPSHOT_TICK_S)

    def push_due_snapshots(self) -> None:
        now = self.clock.monotonic()
        due = [c for c in self.clients if c.snapshot_hz > 0 and not c.closing and now >= c.next_snapshot_due]
        if not due:
            return
        snap = self.engine.snapshot()
        seq = snap.seq
        frame: bytes | None = None
        for client in due:
            period = 1.0 / client.snapshot_hz
            client.next_snapshot_due = max(client.next_snapshot_due + period, now + period * 0.5)
            if seq == client.last_seq:
                continue
            if frame is None:
                frame = self.frame(Push("snapshot", snap.to_wire()))
            client.offer_snapshot(frame, seq)

    # -- one connection --

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._client_tasks.add(task)
        client = _Client(self, reader, writer)
        if len(self._pending) >= self.max_pending:
            # Idle connections must not pile up until accept() fails with EMFILE: drop the oldest
            # unauthenticated one (a real client says hello at once, so it is never the oldest for long).
            oldest = next(iter(self._pending))
            self._pending.pop(oldest, None)
            self.dropped_pending += 1
            self._dropped_log.note(f"more than {self.max_pending} handshakes pending")
            oldest.closing = True  # its hello may already be buffered: it must not take a client slot
            with contextlib.suppress(Exception):
                oldest.writer.transport.abort()
        self._pending[client] = None
        try:
            try:
                accepted = await self._handshake(client)
            finally:
                self._pending.pop(client, None)
            if accepted:
                await self._serve(client)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            client.closing = True
            client.wake.set()
            self.clients.discard(client)
            for t in list(client.inflight):
                t.cancel()
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._client_tasks.discard(task)

    async def _handshake(self, client: _Client) -> bool:
        try:
            line = await wait_for(self.clock, client.reader.readline(), HANDSHAKE_TIMEOUT_S)
        except TimeoutError:
            await client.send_now(ErrorFrame("bad_frame", "no hello within the handshake timeout"))
            return False
        except (ValueError, asyncio.LimitOverrunError):
            await client.send_now(ErrorFrame("bad_frame", "hello frame too large"))
            return False
        if not line:
            return False
        try:
            hello = decode(line)
        except ProtocolError as exc:
            await client.send_now(ErrorFrame(exc.code, f"expected a hello frame: {exc}"))
            return False
        if not isinstance(hello, Hello):
            await client.send_now(ErrorFrame("bad_frame", "the first frame must be a hello"))
            return False
        client.name = hello.client[:80] or "?"
        if not self.address.is_unix:
            # Authenticate before anything else is told (the version helps an attacker pick an exploit).
            expected = (self._token or "").encode("utf-8")
            given = (hello.token or "").encode("utf-8")
            if not hello.token:
                self._auth_failures.note("no token")
                await client.send_now(ErrorFrame("auth_failed", "this daemon requires a token (daemon.control.token)"))
                return False
            if not hmac.compare_digest(given, expected):
                self._auth_failures.note("wrong token")
                await client.send_now(ErrorFrame("auth_failed", "wrong token"))
                return False
        if hello.protocol != PROTOCOL_VERSION:
            await client.send_now(
                ErrorFrame(
                    "version_mismatch",
                    f"client speaks control protocol {hello.protocol}, this daemon (cryptomon {__version__}) "
                    f"speaks {PROTOCOL_VERSION}: use the same cryptomon version for the daemon and the client",
                )
            )
            return False
        if client.closing:  # dropped as one of too many pending handshakes
            return False
        # Check and take the slot with no await in between: concurrent handshakes cannot all pass the check.
        if len(self.clients) >= self.max_clients:
            await client.send_now(ErrorFrame("too_many_clients", f"the daemon serves at most {self.max_clients}"))
            return False
        self.clients.add(client)
        self._pending.pop(client, None)  # admitted: no longer one of the handshakes that may be dropped
        await client.send_now(
            Welcome(
                protocol=PROTOCOL_VERSION,
                server=f"cryptomon/{__version__}",
                location=self.config.daemon.location,
                pid=os.getpid(),
            )
        )
        log.info("control: client %s attached (%d attached)", client.name, len(self.clients))
        return True

    async def _serve(self, client: _Client) -> None:
        writer_task = asyncio.create_task(client.write_loop(), name=f"control-writer-{client.name}")
        try:
            while not client.closing:
                try:
                    line = await client.reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    client.kick(f"frame larger than {MAX_CLIENT_FRAME} bytes")
                    break
                if not line:
                    break
                try:
                    msg = decode(line)
                except ProtocolError as exc:
                    client.offer_response(self.frame(ErrorFrame(exc.code, str(exc))))
                    continue
                if not isinstance(msg, Request):
                    client.offer_response(self.frame(ErrorFrame("bad_frame", "clients send request frames only")))
                    continue
                if len(client.inflight) >= MAX_INFLIGHT_PER_CLIENT:
                    busy = Response(msg.id, False, error_code="busy", error_message="too many requests in flight")
                    client.offer_response(self.frame(busy))
                    continue
                task = asyncio.create_task(self._answer(client, msg))
                client.inflight.add(task)
                task.add_done_callback(client.inflight.discard)
        finally:
            log.info("control: client %s detached", client.name)
            client.closing = True
            client.wake.set()
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer_task

    async def _answer(self, client: _Client, req: Request) -> None:
        try:
            params = validate_params(req.method, req.params)
            result = await self._dispatch(client, req.method, params)
            response = Response(req.id, True, result=result)
        except ProtocolError as exc:
            response = Response(req.id, False, error_code=exc.code, error_message=str(exc))
        except CommandError as exc:
            response = Response(req.id, False, error_code=exc.code, error_message=str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("control: %s failed", req.method)
            response = Response(
                req.id, False, error_code="internal", error_message=f"{req.method} failed: {type(exc).__name__}: {exc}"
            )
        client.offer_response(self.frame(response))

    async def _dispatch(self, client: _Client, method: str, params: JsonObject) -> JsonValue:
        """Run one request whose params ``validate_params`` accepted (so the narrowing below cannot fail on a
        well-formed request; a frame that slipped past it is refused, never half-read)."""

        def string(key: str) -> str:
            value = text(params.get(key))
            if value is None:
                raise CommandError(f"{method}: parameter {key!r} must be a string", "invalid")
            return value

        def number(key: str) -> float:
            value = finite(params.get(key))
            if value is None:
                raise CommandError(f"{method}: parameter {key!r} must be a finite number", "invalid")
            return value

        def opt_string(key: str) -> str | None:
            return text(params.get(key))

        def opt_number(key: str) -> float | None:
            return None if params.get(key) is None else number(key)

        by = opt_string("by") or client.name
        engine = self.engine
        handlers: dict[str, Callable[[], Awaitable[JsonObject]]] = {
            "ack": lambda: engine.ack(string("incident_id"), by, opt_string("note")),
            "silence": lambda: engine.silence(
                objects(params.get("matchers")), opt_number("duration_s"), string("comment"), by
            ),
            "unsilence": lambda: engine.unsilence(string("silence_id"), by),
            "analyze": lambda: engine.analyze(
                string("incident_id"), force=params.get("force") is True, offline=params.get("offline") is True
            ),
            "summary": lambda: engine.summary(opt_number("since_s"), offline=params.get("offline") is True),
            "maintenance_add": lambda: engine.maintenance_add(
                opt_string("exchange"), number("starts_at"), number("ends_at"), opt_string("comment") or "",
                opt_string("recurrence"), opt_string("timezone") or "UTC", by,
            ),
            "maintenance_remove": lambda: engine.maintenance_remove(string("window_id"), by),
            "pause": lambda: engine.pause(string("exchange")),
            "resume": lambda: engine.resume(string("exchange")),
            "reload": lambda: _wire((self._on_reload or engine.reload)()),
            "history": lambda: _history_wire(engine.history(
                string("exchange"), opt_string("probe"), number("since"), number("until"), number("resolution_s"),
                integer(params.get("recent", 0), 0) or 0,
            )),
        }
        if method == "ping":
            return {"pong": True, "ts": self.clock.now()}
        if method == "snapshot":
            return self.engine.snapshot().to_wire()
        if method == "health":
            return self.engine.health().to_wire()
        if method == "shutdown":
            if self._on_shutdown is None:
                raise CommandError("this daemon cannot be stopped through the control API", "invalid")
            log.info("control: shutdown requested by %s", client.name)
            # After the response has gone out.
            asyncio.get_running_loop().call_later(0.05, self._on_shutdown)
            return {"stopping": True, "pid": os.getpid()}
        if method == "subscribe":
            hz = finite(params.get("snapshot_hz", 0)) or 0.0
            client.snapshot_hz = 0.0 if hz <= 0 else min(MAX_SNAPSHOT_HZ, max(MIN_SNAPSHOT_HZ, hz))
            client.want_events = params.get("events") is True
            client.next_snapshot_due = self.clock.monotonic()  # the first snapshot goes out at once
            client.last_seq = None
            return {"snapshot_hz": client.snapshot_hz, "events": client.want_events}
        return await handlers[method]()

    # -- introspection for tests and /metrics --

    def client_stats(self) -> list[JsonObject]:
        return [
            {
                "name": c.name,
                "events_queued": len(c.events),
                "responses_queued": len(c.responses),
                "snapshot_pending": c.snapshot is not None,
                "dropped_snapshots": c.dropped_snapshots,
                "sent_frames": c.sent_frames,
            }
            for c in self.clients
        ]


async def _wire(result: Awaitable[ReloadResult]) -> JsonObject:
    return (await result).to_wire()


async def _history_wire(answer: Awaitable[HistoryAnswer]) -> JsonObject:
    return (await answer).to_wire()
