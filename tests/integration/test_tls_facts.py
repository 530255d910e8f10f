"""Issue 13 item 10: TLS facts as probe data, against a real TLS server on loopback with throwaway CAs.

- the transport reads the peer certificate once per new connection (not on a reused one): fingerprint,
  issuer, expiry;
- the real ``cryptomon daemon`` probing an https target raises ``tls_expiry`` for a certificate that
  expires in 5 days, ``tls_issuer_changed`` when the host suddenly shows a certificate from another CA
  (what a TLS-intercepting proxy looks like), and resolves it when the known issuer is back.

Certificates come from the ``openssl`` CLI (skipped without it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from cryptomon_tui.probing.transport import AiohttpTransport, TransportOptions, TransportRequest
from tests.fakes.daemon_harness import REPO, free_port
from tests.integration.processes import stop

# one xdist worker for the module: its tests share one certificate authority (the module-scoped `pki`)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
              pytest.mark.xdist_group("tls_facts")]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(folder: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             f"{name}.key", "-out", f"{name}.pem", "-days", "30", "-subj", f"/O=Throwaway/CN={name}", cwd=folder)


def make_leaf(folder: Path, ca: str, name: str, days: int) -> tuple[Path, Path]:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", str(days), "-extfile", f"{name}.ext", cwd=folder)
    return folder / f"{name}.pem", folder / f"{name}.key"


@pytest.fixture(scope="module")
def pki() -> Iterator[dict[str, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="cmtls-"))
    make_ca(folder, "Exchange CA")
    make_ca(folder, "Corporate Proxy CA")
    exchange_cert, exchange_key = make_leaf(folder, "Exchange CA", "exchange", 5)
    proxy_cert, proxy_key = make_leaf(folder, "Corporate Proxy CA", "proxy", 365)
    bundle = folder / "bundle.pem"
    bundle.write_text((folder / "Exchange CA.pem").read_text() + (folder / "Corporate Proxy CA.pem").read_text())
    yield {"exchange_cert": exchange_cert, "exchange_key": exchange_key, "proxy_cert": proxy_cert,
           "proxy_key": proxy_key, "bundle": bundle}
    shutil.rmtree(folder, ignore_errors=True)


class TlsServer:
    """HTTPS on 127.0.0.1 whose certificate can be swapped; every answer closes the connection, so each
    probe opens a new one (and sees the certificate of the moment)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.port = 0
        self.keep_alive = False
        self._runner: web.AppRunner | None = None

    def use(self, cert: Path, key: Path) -> None:
        self.ctx.load_cert_chain(cert, key)  # new handshakes present the new certificate

    async def _ok(self, request: web.Request) -> web.Response:
        headers = {} if self.keep_alive else {"Connection": "close"}
        return web.json_response({"status": "ok"}, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._ok)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ctx)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server(pki: dict[str, Path]) -> AsyncIterator[TlsServer]:
    s = TlsServer(pki["exchange_cert"], pki["exchange_key"])
    await s.start()
    yield s
    await s.stop()


async def test_transport_reads_the_certificate_once_per_new_connection(
    pki: dict[str, Path], server: TlsServer
) -> None:
    server.keep_alive = True
    ctx = ssl.create_default_context(cafile=str(pki["bundle"]))
    transport = AiohttpTransport("t", TransportOptions(ssl=ctx))
    url = f"https://127.0.0.1:{server.port}/time"
    try:
        first = await transport.send(TransportRequest("GET", url, 5.0))
        second = await transport.send(TransportRequest("GET", url, 5.0))
    finally:
        await transport.aclose()
    assert first.error is None and first.tls is not None, first
    assert first.tls.host == "127.0.0.1" and "CN=Exchange CA" in first.tls.issuer
    assert first.tls.not_after is not None
    days = (first.tls.not_after - first.sent_at) / 86400
    assert 4.0 < days <= 5.0
    assert len(first.tls.fingerprint) == 64
    assert second.error is None and second.phases is not None and second.phases.reused
    assert second.tls is None  # a reused connection costs nothing extra


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def eventually(cond: Callable[[], bool], within: float, what: str, detail: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {detail()}")
        await asyncio.sleep(0.1)


@pytest.mark.timeout(120)
async def test_daemon_flags_an_unknown_issuer_and_a_near_expiry(
    tmp_path: Path, pki: dict[str, Path], server: TlsServer
) -> None:
    cfg = tmp_path / "config.yaml"
    http_port = free_port()
    cfg.write_text(yaml.safe_dump({
        "exchanges": {"venue": {"kind": "generic", "url": f"https://127.0.0.1:{server.port}/ping",
                                "interval": "300ms", "timeout": "2s", "budget_share": 1.0}},
        "storage": {"path": str(tmp_path / "s.sqlite3")},
        "daemon": {"http": {"port": http_port}},
    }))
    sock_dir = Path(tempfile.mkdtemp(prefix="cmt-", dir="/tmp"))
    env = {**os.environ, "CRYPTOMON_HOME": str(tmp_path / "home"), "SSL_CERT_FILE": str(pki["bundle"])}
    log = tmp_path / "daemon.log"
    events_path = tmp_path / "events1.jsonl"

    async def start(events_file: Path) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cryptomon_tui", "daemon", "--config", str(cfg),
            "--socket", str(sock_dir / "d.sock"), "--events-jsonl", str(events_file),
            "--probes-jsonl", str(tmp_path / "probes.jsonl"),
            cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log.open("ab"),
            stderr=asyncio.subprocess.STDOUT,
        )

    def seen(kind: str, rule: str) -> list[dict[str, Any]]:
        return [e for e in events(events_path) if e["event"] == kind and e["incident"].get("rule") == rule]

    def detail() -> Any:
        probes = tmp_path / "probes.jsonl"
        return ([(e["event"], e["incident"].get("rule")) for e in events(events_path)], log.read_text()[-1500:],
                probes.read_text()[-800:] if probes.exists() else "")

    proc = await start(events_path)
    try:
        await eventually(lambda: bool(seen("opened", "tls_expiry")), 30, "the expiry warning", detail)
        expiry = seen("opened", "tls_expiry")[0]["incident"]
        assert expiry["severity"] == "warning", expiry
        assert re.search(r"expires in (4\.\d|5\.0) days", expiry["summary"]), expiry
        assert not seen("opened", "tls_issuer_changed")
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{http_port}/metrics") as resp:
            metrics = await resp.text()
        days = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("cryptomon_tls_cert_days_left{") and 'host="127.0.0.1"' in line]
        assert len(days) == 1 and 4.0 < days[0] <= 5.0, metrics
        # an intercepting proxy appears: same host, a certificate from a CA never seen for it
        server.use(pki["proxy_cert"], pki["proxy_key"])
        await eventually(lambda: bool(seen("opened", "tls_issuer_changed")), 30, "the issuer change", detail)
        changed = seen("opened", "tls_issuer_changed")[0]["incident"]
        assert changed["severity"] == "error" and "Corporate Proxy CA" in changed["summary"], changed
        assert "Exchange CA" in changed["summary"]
        await eventually(lambda: bool(seen("resolved", "tls_expiry")), 30, "expiry resolved (365 days now)", detail)
        # the proxy goes away: the known issuer is back
        server.use(pki["exchange_cert"], pki["exchange_key"])
        await eventually(lambda: bool(seen("resolved", "tls_issuer_changed")), 30, "the issuer change resolved",
                         detail)
        assert len(seen("opened", "tls_issuer_changed")) == 1  # one incident, not one per connection
    finally:
        await stop(proc)
    # The proxy is installed while the daemon is down: after the restart it is still not the baseline.
    server.use(pki["proxy_cert"], pki["proxy_key"])
    events_path = tmp_path / "events2.jsonl"
    proc = await start(events_path)
    try:
        # (the incident resolved a moment ago is restored and reopens)
        await eventually(lambda: bool(seen("opened", "tls_issuer_changed") or seen("reopened", "tls_issuer_changed")),
                         30, "the change seen after a restart", detail)
    finally:
        await stop(proc)
        shutil.rmtree(sock_dir, ignore_errors=True)
