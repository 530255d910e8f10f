"""Login frames of the signed user-data streams, built as exchanges.md specifies (published or
self-computed vectors there)."""

from __future__ import annotations

import hashlib
import hmac
import json

from cryptomon_tui.exchanges.base import Credentials
from cryptomon_tui.exchanges.registry import adapter_class


def test_okx_login_frame_matches_the_reference_vector():
    creds = Credentials("key", "22582BD0CFF14C41EDBF1AB98506286D", "phrase")
    [spec] = adapter_class("okx")().user_stream_specs(creds, "wss://ws.okx.com:8443/ws/v5/public",
                                                       now=lambda: 1538054050.4)
    assert spec.url == "wss://ws.okx.com:8443/ws/v5/private" and spec.login is not None
    args = json.loads(spec.login())["args"][0]
    assert args == {"apiKey": "key", "passphrase": "phrase", "timestamp": "1538054050",
                    "sign": "+LdIr8lkkvhr5hoA3g9TMC0+uQJ849ftAcocA/ouu4M="}
    assert adapter_class("okx")().user_stream_specs(Credentials("key", "secret")) == []  # no passphrase


def test_bybit_auth_frame_signs_get_realtime_and_expires_ahead():
    [spec] = adapter_class("bybit")().user_stream_specs(Credentials("key", "TEST_SECRET_DO_NOT_USE"),
                                                         "wss://stream.bybit.com/v5/public/linear", now=lambda: 1000.0)
    assert spec.url == "wss://stream.bybit.com/v5/private" and spec.login is not None
    frame = json.loads(spec.login())
    key, expires, sig = frame["args"]
    assert frame["op"] == "auth" and key == "key" and expires == 1_010_000
    assert sig == hmac.new(b"TEST_SECRET_DO_NOT_USE", b"GET/realtime1010000", hashlib.sha256).hexdigest()


def test_deribit_auth_uses_client_signature_without_trailing_newline():
    [spec] = adapter_class("deribit")().user_stream_specs(Credentials("cid", "ABCD"), "wss://www.deribit.com/ws/api/v2",
                                                           now=lambda: 1554883365.0)
    assert spec.login is not None
    params = json.loads(spec.login())["params"]
    assert params["grant_type"] == "client_signature" and params["timestamp"] == 1554883365000
    plain = f"1554883365000\n{params['nonce']}\n".encode()
    assert params["signature"] == hmac.new(b"ABCD", plain, hashlib.sha256).hexdigest()
    assert params["scope"] == "account:read"


def test_binance_has_no_user_stream_here():
    assert adapter_class("binance_spot")().user_stream_specs(Credentials("k", "s")) == []
