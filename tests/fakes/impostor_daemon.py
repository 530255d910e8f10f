"""An impostor daemon for tests: speaks the control protocol on a real Unix socket and sends whatever frames
and replies a test crafts (hostile values, newer schemas), so the client and every face above it are tested on
exactly those bytes."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.protocol import PROTOCOL_VERSION
from cryptomon_tui.kernel.jsonvalue import JsonObject


@asynccontextmanager
async def impostor_daemon(
    frames: list[JsonObject], replies: dict[str, JsonObject] | None = None
) -> AsyncIterator[DaemonAddress]:
    """A daemon that answers each request with ``replies[method]`` (``{}`` when not given) and, from the first
    subscribe on, pushes ``frames`` every 0.1 s (a client's event queue may start just after its subscribe:
    nothing then depends on when)."""
    folder = Path(tempfile.mkdtemp(prefix="cmhf-", dir="/tmp"))
    path = folder / "c.sock"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readline()  # hello
            welcome = {"type": "welcome", "protocol": PROTOCOL_VERSION, "server": "impostor", "location": "x",
                       "pid": 1}
            writer.write(json.dumps(welcome).encode() + b"\n")
            pusher: asyncio.Task[None] | None = None

            async def push() -> None:
                while True:
                    for frame in frames:
                        writer.write(json.dumps(frame).encode() + b"\n")
                    await writer.drain()
                    await asyncio.sleep(0.1)

            try:
                while line := await reader.readline():
                    request = json.loads(line)
                    result = (replies or {}).get(request.get("method"), {})
                    reply = {"type": "response", "id": request["id"], "ok": True, "result": result}
                    writer.write(json.dumps(reply).encode() + b"\n")
                    await writer.drain()
                    if request.get("method") == "subscribe" and pusher is None:
                        pusher = asyncio.create_task(push())
            finally:
                if pusher is not None:
                    pusher.cancel()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, path=str(path))
    try:
        yield DaemonAddress(socket_path=path)
    finally:
        server.close()
        await server.wait_closed()
        shutil.rmtree(folder, ignore_errors=True)
