"""All stream probes of one configuration: built from the adapters' stream specs, started, paused, stopped.

Which URL: ``ws_url`` when configured; otherwise the adapter's public stream URL, except when the
REST ``base_url`` is overridden. A testnet, proxy or simulator REST URL says the user does not want
mainnet data: for a loopback base URL (the simulator serves both on one port) the stream URL is
derived from it; for any other overridden base URL the streams stay off until ``ws_url`` is set
(``stream_plan`` says why, and ``config check`` prints it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.root import Config
from cryptomon_tui.exchanges.base import Credentials
from cryptomon_tui.exchanges.registry import create_adapter
from cryptomon_tui.exchanges.ws import StreamSpec
from cryptomon_tui.kernel.streams import StreamStats
from cryptomon_tui.streams.attempts import AttemptLimiter
from cryptomon_tui.streams.probe import AiohttpConnector, OffsetSource, StreamProbe, WsConnector

log = logging.getLogger(__name__)

ConnectorFactory = Callable[[], WsConnector]
OffsetFor = Callable[[str], tuple[float, float] | None]


@dataclass(frozen=True, slots=True)
class PlannedStream:
    exchange: str
    spec: StreamSpec | None
    note: str = ""  # why there is no stream (spec None)


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def stream_url_for(default_ws: str | None, base_url: str | None, ws_url: str | None) -> tuple[str | None, str]:
    """(stream base URL or None, note)."""
    if ws_url:
        return ws_url, ""
    if not base_url:
        return default_ws, ""
    parts = urllib.parse.urlsplit(base_url)
    if not _loopback(parts.hostname):
        return None, "base_url is overridden and ws_url is not set: streams off (set ws_url to watch them)"
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = urllib.parse.urlsplit(default_ws or "").path.rstrip("/")
    return f"{scheme}://{parts.netloc}{path}", ""


def stream_plan(config: Config) -> list[PlannedStream]:
    """The streams this configuration watches, one entry per (exchange, stream) or per reason for none."""
    plan: list[PlannedStream] = []
    for name, cfg in config.enabled_exchanges().items():
        if not cfg.streams:
            continue
        try:
            adapter = create_adapter(name, cfg)
        except Exception as exc:  # reported by the probe runner too
            plan.append(PlannedStream(name, None, f"adapter: {type(exc).__name__}: {exc}"))
            continue
        url, note = stream_url_for(adapter.default_ws_url, cfg.base_url, cfg.ws_url)
        if url is None:
            plan.append(PlannedStream(name, None, note))
            continue
        specs = adapter.stream_specs(url)
        plan.extend(PlannedStream(name, spec) for spec in specs)
        if cfg.user_stream and cfg.credentials is not None:
            creds = cfg.credentials
            user = adapter.user_stream_specs(Credentials(
                creds.api_key.get_secret_value(), creds.api_secret.get_secret_value(),
                creds.passphrase.get_secret_value() if creds.passphrase else None), url)
            plan.extend(PlannedStream(name, spec) for spec in user)
    return plan


def _share(config: Config, exchange: str) -> float:
    """The exchange's budget share (the same one its REST probes get)."""
    own = config.exchanges[exchange].budget_share
    return float(own if own is not None else config.probing.budget_share)


class StreamRunner:
    """Owns the stream probes; the engine asks it for ``stats()`` at each detection tick."""

    def __init__(self, config: Config, clock: Clock, offset_for: OffsetFor | None = None,
                 connector_factory: ConnectorFactory | None = None, rng: random.Random | None = None,
                 bounds: tuple[float, ...] | None = None) -> None:
        self._clock = clock
        self._offset_for = offset_for or (lambda _name: None)
        self._connector_factory = connector_factory or AiohttpConnector
        self.probes: list[StreamProbe] = []
        self._connectors: list[WsConnector] = []
        self.notes: dict[str, str] = {}
        rng = rng or random.Random()
        # One connection-attempt budget per exchange: a user-data stream shares it with the market stream.
        limiters: dict[str, AttemptLimiter] = {}
        for planned in stream_plan(config):
            if planned.spec is None:
                self.notes[planned.exchange] = planned.note
                continue
            adapter = create_adapter(planned.exchange, config.exchanges[planned.exchange])
            connector = self._connector_factory()
            self._connectors.append(connector)
            probe = StreamProbe(
                planned.exchange, planned.spec, adapter.classify_ws_message, connector, clock,
                offset=self._offset(planned.exchange), rng=random.Random(rng.random()), bounds=bounds,
                attempt_share=_share(config, planned.exchange), limiter=limiters.get(planned.exchange),
            )
            limiters.setdefault(planned.exchange, probe.limiter)
            self.probes.append(probe)
        self.paused: set[str] = set()

    def _offset(self, exchange: str) -> OffsetSource:
        return lambda: self._offset_for(exchange)

    async def start(self) -> None:
        for probe in self.probes:
            if probe.exchange not in self.paused:
                probe.start()

    async def stop(self) -> None:
        for probe in self.probes:
            await probe.stop()
        for connector in self._connectors:
            with contextlib.suppress(Exception):
                await connector.aclose()

    async def pause(self, exchange: str) -> None:
        """A paused exchange's streams disconnect (its incidents stay as they are)."""
        self.paused.add(exchange)
        for probe in self.probes:
            if probe.exchange == exchange:
                await probe.stop()

    def resume(self, exchange: str) -> None:
        self.paused.discard(exchange)
        for probe in self.probes:
            if probe.exchange == exchange:
                probe.restart()

    def retry_now(self, exchange: str) -> None:
        """The exchange's REST probes recovered: its streams in a reconnect backoff try again now."""
        if exchange in self.paused:
            return
        for probe in self.probes:
            if probe.exchange == exchange:
                probe.retry_now()

    def stats(self) -> list[StreamStats]:
        return [p.stats() for p in self.probes if p.exchange not in self.paused]
