"""aiohttp internals the probe transport relies on: fail loudly here when an aiohttp release changes them.

``probing/transport.py`` swaps ``TCPConnector._factory`` (to note when a reply's last byte arrived), reads
that protocol back from ``ClientResponse._protocol``, and clears ``ClientSession._retry_connection`` (a dead
keep-alive connection must be a failed probe, not a silent second request). None is public API, so aiohttp
is pinned below its next minor in pyproject.toml; before raising that pin, this file must pass on the new
version.
"""

from __future__ import annotations

import inspect
import logging

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_proto import ResponseHandler

from cryptomon_tui.probing import transport


async def test_the_connector_builds_its_protocol_through_a_partial_we_can_replace() -> None:
    connector = aiohttp.TCPConnector()
    try:
        original = connector._factory
        assert getattr(original, "func", None) is ResponseHandler, (
            f"aiohttp {aiohttp.__version__}: TCPConnector._factory is {original!r}, not partial(ResponseHandler)"
        )
        assert transport._install_timed_protocol(connector) is True
        assert connector._factory.func is transport._TimedResponseHandler  # type: ignore[attr-defined]
    finally:
        await connector.close()


async def test_replies_really_arrive_through_the_timed_protocol() -> None:
    """The swap has an effect: aiohttp builds each connection with ``_factory`` (not some other path)."""

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="x" * 10_000)

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    connector = aiohttp.TCPConnector()
    assert transport._install_timed_protocol(connector)
    try:
        url = f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as resp:
            protocol = resp._protocol  # what the transport reads (the connection may be released already)
            body = await resp.read()
        assert len(body) == 10_000
        assert isinstance(protocol, transport._TimedResponseHandler), type(protocol)
        assert protocol.last_data_ns > 0
    finally:
        await runner.cleanup()


async def test_the_session_retries_silently_unless_we_turn_it_off() -> None:
    async with aiohttp.ClientSession() as session:
        assert session._retry_connection is True, f"aiohttp {aiohttp.__version__}: default changed"
        assert "_retry_connection" in inspect.getsource(aiohttp.ClientSession._request), (
            f"aiohttp {aiohttp.__version__}: ClientSession._request no longer reads _retry_connection"
        )
        assert transport._disable_silent_retry(session) is True
        assert session._retry_connection is False


async def test_the_transport_applies_both_hooks() -> None:
    t = transport.AiohttpTransport("x", transport.TransportOptions())
    try:
        session = t._ensure_session()
        assert session._retry_connection is False
        assert session.connector._factory.func is transport._TimedResponseHandler  # type: ignore[union-attr]
    finally:
        await t.aclose()


def test_a_changed_aiohttp_is_reported_not_silently_ignored(caplog: pytest.LogCaptureFixture) -> None:
    class Changed:
        pass

    transport._warned.clear()
    with caplog.at_level(logging.WARNING, logger=transport.log.name):
        assert transport._install_timed_protocol(Changed()) is False  # type: ignore[arg-type]
        assert transport._disable_silent_retry(Changed()) is False  # type: ignore[arg-type]
        transport._disable_silent_retry(Changed())  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages  # once per hook
    assert any("_factory" in m for m in messages) and any("_retry_connection" in m for m in messages)
