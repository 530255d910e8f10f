"""The daemon's HTTP side: Prometheus ``/metrics``, ``/healthz``, ``/readyz`` and a read-only snapshot.

Bound to 127.0.0.1 unless configured otherwise. Every response body passes the secret scrubber, so
a secret that leaked into the engine's state still never leaves the process.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cryptomon_tui import __version__
from cryptomon_tui.clock import Clock
from cryptomon_tui.config.root import Config
from cryptomon_tui.daemon.metrics import build_registry
from cryptomon_tui.engine.api import EngineAPI, Health
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue
from cryptomon_tui.redaction import Redactor, collect_secrets

log = logging.getLogger(__name__)



class HttpServerError(Exception):
    pass


class HttpServer:
    def __init__(
        self,
        engine: EngineAPI,
        config: Config,
        clock: Clock,
        *,
        redactor: Redactor | None = None,
        extra_metrics: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.redactor = redactor or Redactor(collect_secrets(config))
        self.extra_metrics = extra_metrics
        self.registry = build_registry(engine, lambda: self.config.daemon.location, clock.now, extra_metrics)
        self._runner: web.AppRunner | None = None
        self.host = config.daemon.http.host
        self.port = config.daemon.http.port
        self.scrapes = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def set_config(self, config: Config) -> None:
        """After a reload: new location label and secrets. The listening address changes on restart only."""
        self.config = config
        self.redactor.set_secrets(collect_secrets(config))

    def _allowed_hosts(self) -> set[str]:
        http = self.config.daemon.http
        names = {"localhost", "127.0.0.1", "::1", http.host.lower(), *(h.lower() for h in http.allowed_hosts)}
        return {n.strip("[]") for n in names}

    @web.middleware
    async def _host_check(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Refuse a Host header that is not loopback or configured: a DNS-rebinding page in a local browser
        sends its own domain name. IP literals (a scraper reaching a container by address) and clients that
        send no Host (not a browser) are let through: neither can come from a rebinding page."""
        host = request.headers.get("Host")
        if host is not None and not _is_ip(name := _host_name(host)) and name not in self._allowed_hosts():
            return web.Response(
                status=421, text="host not allowed (add it to daemon.http.allowed_hosts)\n", content_type="text/plain"
            )
        response: web.StreamResponse = await handler(request)
        return response

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._host_check])
        app.router.add_get("/", self._index)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/api/v1/snapshot", self._snapshot)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise HttpServerError(
                f"cannot listen for /metrics on {self.host}:{self.port}: {exc.strerror or exc} "
                "(set daemon.http.port, or daemon.http.enabled: false)"
            ) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("metrics and health on %s (/metrics /healthz /readyz)", self.url)
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning(
                "/metrics listens on %s without authentication: keep it on a private network or VPN", self.host
            )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers --

    def _json(self, data: JsonValue, status: int = 200) -> web.Response:
        text = self.redactor.redact_secrets(json.dumps(data, separators=(",", ":"), default=str))
        return web.Response(text=text, status=status, content_type="application/json")

    async def _index(self, request: web.Request) -> web.Response:
        return self._json(
            {
                "service": "cryptomon",
                "version": __version__,
                "location": self.config.daemon.location,
                "endpoints": ["/metrics", "/healthz", "/readyz", "/api/v1/snapshot"],
            }
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        body = self.redactor.redact_secrets(generate_latest(self.registry).decode("utf-8"))
        return web.Response(body=body.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _health(self) -> Health:
        try:
            return self.engine.health()
        except Exception as exc:  # a health check must answer, not crash
            log.exception("health check failed")
            return Health(loop=False, config_loaded=False, store_writable=False, probes_running=False,
                          extra={"error": type(exc).__name__})

    async def _healthz(self, request: web.Request) -> web.Response:
        # Reaching this handler proves the event loop answers; the engine may add its own watchdog.
        health = self._health()
        alive = health.loop and health.snapshot
        body: JsonObject = {"status": "ok" if alive else "fail", "loop": health.loop, "version": __version__}
        if not health.snapshot:
            body["snapshot"] = False  # the engine cannot build a snapshot: the faces see nothing
            if health.snapshot_error:
                body["reason"] = health.snapshot_error
        if "loop_lag_ms" in health.extra:
            body["loop_lag_ms"] = health.extra["loop_lag_ms"]
        return self._json(body, 200 if alive else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        health = self._health()
        checks = {"config_loaded": health.config_loaded, "store_writable": health.store_writable,
                  "probes_running": health.probes_running}
        ready = all(checks.values())
        body: JsonObject = {"status": "ready" if ready else "not ready", "checks": dict(checks)}
        failing = [name for name, ok in checks.items() if not ok]
        if failing:
            body["failing"] = list(failing)
        body["detail"] = health.detail()
        if not health.store_writable and health.store_reason:
            body["reason"] = health.store_reason
        return self._json(body, 200 if ready else 503)

    async def _snapshot(self, request: web.Request) -> web.Response:
        token = self.config.daemon.http.snapshot_token
        if token is not None:
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {token.get_secret_value()}"
            if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
                return web.Response(
                    status=401, text="bearer token required\n", content_type="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="cryptomon"'},
                )
        return self._json(self.engine.snapshot().to_wire())


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _host_name(header: str) -> str:
    """The host part of a Host header, lowercased, without port or IPv6 brackets."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")
