"""SQLite connections, each owned by one thread, and the classification of storage errors.

Why own threads instead of ``asyncio.to_thread``: a sqlite3 connection must stay on the
thread that uses it, and the single-writer rule is easiest to keep (and to test) when
exactly one thread ever holds the connection that writes. Jobs are plain functions of the
connection; the event loop only awaits their futures.
"""

from __future__ import annotations

import asyncio
import errno
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from cryptomon_tui.redaction import scrub

if TYPE_CHECKING:
    from _typeshed import SupportsLenAndGetItem

T = TypeVar("T")
# What sqlite3 accepts as the parameters of one statement: a sequence (``?``) or a mapping (``:name``).
Params: TypeAlias = "SupportsLenAndGetItem[object] | Mapping[str, object]"


class StoreUnavailable(sqlite3.OperationalError):
    """The database could not be opened (see ``Store.health()`` for why)."""


def prepare_location(path: Path) -> None:
    """Create missing folders as 0700 and the database file as 0600 (it holds incident data)."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        if parent.parent == parent:
            break
        parent = parent.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)


def _scrub_params(params: Params) -> tuple[object, ...] | dict[str, object]:
    if isinstance(params, Mapping):
        return {k: scrub(v) if isinstance(v, str) else v for k, v in params.items()}
    if isinstance(params, tuple | list):
        return tuple(scrub(v) if isinstance(v, str) else v for v in params)
    return tuple(scrub(v) if isinstance(v, str) else v for v in (params[i] for i in range(len(params))))


class ScrubbingConnection(sqlite3.Connection):
    """The writer's connection: every text parameter passes the process-wide scrubber, so no row
    (incidents, timeline, analyses, probe results, outbox payloads ...) keeps a configured secret or a
    terminal control, whichever repository wrote it. Literal SQL carries no untrusted text."""

    def execute(self, sql: str, parameters: Params = (), /) -> sqlite3.Cursor:
        return super().execute(sql, _scrub_params(parameters))

    def executemany(self, sql: str, parameters: Iterable[Params], /) -> sqlite3.Cursor:
        return super().executemany(sql, (_scrub_params(p) for p in parameters))


def connect(path: Path, *, busy_timeout_s: float, writer: bool) -> sqlite3.Connection:
    """Open one connection with the pragmas every cryptomon connection uses.

    Autocommit mode (``isolation_level=None``): transactions are explicit ``BEGIN IMMEDIATE``
    blocks, so a batch is one transaction and nothing is left open by accident.
    """
    if writer:
        prepare_location(path)
    uri = f"file:{path}?mode={'rwc' if writer else 'rw'}"
    conn = sqlite3.connect(
        uri,
        uri=True,
        isolation_level=None,
        check_same_thread=True,
        timeout=busy_timeout_s,
        factory=ScrubbingConnection if writer else sqlite3.Connection,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        if writer:
            # must precede the first table; a no-op on an existing database
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not switch the database to WAL mode (got {mode!r})")
            # NORMAL in WAL mode: a commit survives a crash or SIGKILL of the process, not a power cut
            conn.execute("PRAGMA synchronous = NORMAL")
        else:
            conn.execute("PRAGMA query_only = 1")
        conn.execute("PRAGMA foreign_keys = OFF")
        # a cheap read that fails at once on a file that is not a database
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


# --- error kinds --------------------------------------------------------------------------

DISK_FULL = "disk_full"
LOCKED = "locked"
CORRUPT = "corrupt"
READ_ONLY = "read_only"
IO_ERROR = "io_error"
SCHEMA = "schema"
OTHER = "other"


def classify(exc: BaseException) -> str:
    """Map an exception to one of the kinds above (logged once per kind)."""
    if isinstance(exc, sqlite3.Error):
        name = str(getattr(exc, "sqlite_errorname", "") or "")
        text = str(exc).lower()
        if name.startswith("SQLITE_FULL") or "database or disk is full" in text:
            return DISK_FULL
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
            return LOCKED
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "not a database" in text or "malformed" in text:
            return CORRUPT
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")) or "readonly" in text:
            return READ_ONLY
        if name.startswith("SQLITE_IOERR") or "disk i/o" in text:
            return IO_ERROR
        if "newer than this cryptomon" in text or "no such table" in text or "no such column" in text:
            return SCHEMA
        return OTHER
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DISK_FULL
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
            return READ_ONLY
        return IO_ERROR
    return OTHER


# --- connection threads ---------------------------------------------------------------------



class DbThread:
    """One thread, one connection; jobs run in submission order.

    ``call`` is for the event loop (awaits a future); ``call_sync`` for plain threads such as
    the CLI. A job raising leaves the thread running.
    """

    def __init__(self, name: str, opener: Callable[[], sqlite3.Connection]) -> None:
        self._opener = opener
        # jobs are closures that settle their own future; None asks the thread to close and end
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                if self._conn is not None:
                    try:
                        self._conn.close()
                    except sqlite3.Error:
                        pass
                    self._conn = None
                return
            job()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the database is not open")
        return self._conn

    def _open(self) -> bool:
        if self._conn is None:
            self._conn = self._opener()
        return True

    def _enqueue(self, work: Callable[[], T]) -> Future[T]:
        """Queue ``work`` for this thread; its result or exception settles the returned future."""
        fut: Future[T] = Future()

        def job() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                result = work()
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self._queue.put(job)
        return fut

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        return self._enqueue(lambda: fn(self._connection()))

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    def call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self.submit(fn).result()

    def _open_job(self) -> Future[bool]:
        # the one job that runs without a connection
        return self._enqueue(self._open)

    async def open(self) -> None:
        await asyncio.wrap_future(self._open_job())

    def stop(self) -> None:
        self._queue.put(None)

    async def close(self) -> None:
        self.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.thread.join, 10.0)
