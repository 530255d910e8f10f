"""The process-wide scrubber: secrets in every encoding, and text that cannot drive a terminal."""

from __future__ import annotations

import base64
import re
import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon_tui import redaction
from cryptomon_tui.redaction import safe_text, scrub, scrub_obj
from cryptomon_tui.store.db import connect

KEY = "AKx9QmW2eR7tY4uI0oP3"
SECRET = "s3CR/et+Zq8vN1mB5xC6=="
PASS = "Pa55-phrase!"
# what no output may contain: ESC, C0 but newline/tab, DEL, C1, bidi marks/overrides/isolates
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(autouse=True)
def _secrets() -> object:
    redaction.add_process_secrets([KEY, SECRET, PASS])
    yield
    redaction.use_config(None)


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
    ]


@pytest.mark.parametrize("secret", [KEY, SECRET, PASS])
def test_every_encoding_of_a_secret_is_masked(secret: str) -> None:
    for form in forms(secret):
        out = scrub(f"error: echo {form} end")
        assert form not in out and "***" in out


@given(prefix=st.binary(max_size=7), suffix=st.binary(max_size=7), secret=st.sampled_from([KEY, SECRET, PASS]))
@settings(max_examples=200, deadline=None)
def test_a_secret_inside_a_longer_base64_value_is_masked(prefix: bytes, suffix: bytes, secret: str) -> None:
    """``Basic base64(key:secret)`` and the like: the secret's own run of characters is gone whatever its
    offset, so decoding what is left never gives the secret back."""
    blob = base64.b64encode(prefix + secret.encode() + suffix).decode()
    out = scrub(f"Authorization: Basic {blob}")
    for form in forms(secret):
        assert form not in out
    rest = out.split("Basic ", 1)[1]
    assert "***" in rest
    # what is left around the mask is at most the prefix's and suffix's own characters plus two that mix
    assert len(rest.replace("***", "")) <= len(base64.b64encode(prefix + suffix)) + 6


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
@settings(max_examples=500, deadline=None)
def test_safe_text_leaves_no_terminal_control(text: str) -> None:
    out = safe_text(text)
    assert UNSAFE.search(out) is None
    assert safe_text(out) == out  # idempotent: cleaning twice changes nothing


@given(st.lists(st.sampled_from(["a", "\n", "\t", "\x1b", "[", "]", "2J", "52;c;", "\x07", "\x9b", "\x9d",
                                 "\\", "\u202e", "\r", "0;", "m", " ", "é"]), max_size=40))
@settings(max_examples=500, deadline=None)
def test_safe_text_on_escape_heavy_input(parts: list[str]) -> None:
    text = "".join(parts)
    out = safe_text(text)
    assert UNSAFE.search(out) is None
    assert out.count("\n") == text.count("\n")  # newlines kept (CRLF becomes one)


def test_escape_sequences_go_whole_and_printable_text_stays() -> None:
    hostile = "ok\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x1b\\ \x1bPq#0\x1b\\done\u202etxt\x07"
    assert safe_text(hostile) == "ok done\\u202etxt\\x07"
    plain = "plain text, tabs\tand\nnewlines, ünïcode, 日本"
    assert safe_text(plain) == plain


def test_a_control_character_cannot_split_a_secret_to_smuggle_it() -> None:
    split = KEY[:5] + "\x1b[0m" + KEY[5:]
    assert KEY not in scrub(split)


def test_scrub_obj_cleans_nested_json_like_data() -> None:
    data = {"msg": f"key={KEY}", "items": [f"\x1b[31m{SECRET}"], "n": 3, KEY: None}
    out = scrub_obj(data)
    assert KEY not in repr(out) and SECRET not in repr(out) and "\x1b" not in repr(out) and out["n"] == 3


def test_the_store_writer_never_keeps_a_secret_or_a_control(tmp_path: Path) -> None:
    """Any repository's write goes through the scrubbing connection: the file (and its WAL) is clean."""
    path = tmp_path / "db.sqlite"
    conn = connect(path, busy_timeout_s=1.0, writer=True)
    conn.execute("CREATE TABLE t (a TEXT, b TEXT)")
    encoded = base64.b64encode(PASS.encode()).decode()
    conn.execute("INSERT INTO t VALUES (?, ?)", (f"echo {KEY}", f"\x1b]52;c;x\x07{encoded}"))
    conn.executemany("INSERT INTO t VALUES (:a, :b)", [{"a": quote(SECRET, safe=""), "b": "fine"}])
    rows = conn.execute("SELECT a, b FROM t").fetchall()
    conn.close()
    dump = repr(rows)
    assert "fine" in dump
    for secret in (KEY, SECRET, PASS):
        for form in forms(secret):
            assert form not in dump
    data = b"".join(p.read_bytes() for p in tmp_path.glob("db.sqlite*"))
    for secret in (KEY, SECRET, PASS):
        for form in forms(secret):
            assert form.encode() not in data
    assert b"\x1b" not in data
    with sqlite3.connect(path) as plain:  # a reader sees the same clean rows
        assert plain.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def test_cli_streams_are_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    from cryptomon_tui.cli import safe_output

    safe_output.install()
    try:
        print(f"reply \x1b[2J\x1b]52;c;ZXZpbA==\x07 {KEY} \u202e")
        import sys

        print(f"err {base64.b64encode(SECRET.encode()).decode()}\x07", file=sys.stderr)
    finally:
        safe_output.uninstall()
    out, err = capsys.readouterr()
    assert UNSAFE.search(out) is None and UNSAFE.search(err) is None
    assert KEY not in out and "***" in out and "***" in err


async def test_alertmanager_refresh_reposts_only_scrubbed_alerts() -> None:
    """The refresh re-posts remembered firings outside ``send()``: they must be the scrubbed ones."""
    import httpx

    from cryptomon_tui.clock import FakeClock
    from cryptomon_tui.config import config_from_data
    from cryptomon_tui.notify.channels.alertmanager import AlertmanagerChannel
    from cryptomon_tui.notify.model import Notice, NoticeKind

    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, text=f"ok {KEY}")

    cfg = config_from_data({"notify": {"channels": {"am": {"type": "alertmanager", "url": "http://127.0.0.1:9"}}}})
    channel = AlertmanagerChannel("am", cfg.notify.channels["am"], FakeClock())
    channel._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    incident = {"id": "I-1", "fingerprint": "fp", "rule": "r", "severity": "error", "exchange": "binance",
                "summary": f"echo {KEY} \x1b]52;c;eA==\x07", "started_ts": 0.0}
    notice = Notice(kind=NoticeKind.FIRING, ts=1.0, incident=incident)
    first = await channel.send(notice, "k")
    await channel.on_delivered(notice)
    again = await channel.refresh()
    await channel.close()
    assert first.ok and again is not None and again.ok and KEY not in again.answer
    assert len(bodies) == 2
    for body in bodies:
        assert KEY.encode() not in body and b"\\u001b" not in body and b"\x1b" not in body


def test_export_to_a_file_is_scrubbed_like_stdout(tmp_path: Path) -> None:
    """Rows kept before the scrubber knew a secret (an older version, a key added later) leave clean."""
    import asyncio

    from cryptomon_tui.cli import main
    from cryptomon_tui.clock import RealClock
    from cryptomon_tui.config.storage import StorageConfig
    from cryptomon_tui.kernel.results import Outcome, ProbeResult
    from cryptomon_tui.store import Store

    late = "late-added-secret-0123456789"

    async def seed() -> None:
        store = Store(StorageConfig(), RealClock())
        assert await store.open(background=False)
        import time

        store.on_result(ProbeResult("binance", "ticker", time.time() - 5, 3.0, Outcome.AUTH, 401, "-2015",
                                    f"echo {late} \x1b[2J"))
        await store.flush()
        await store.close()

    redaction.use_config(None)
    asyncio.run(seed())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f'analysis:\n  llm: {{base_url: "http://127.0.0.1:9/v1", api_key: "{late}"}}\n')
    cfg.chmod(0o600)
    out = tmp_path / "export.csv"
    assert main(["export", "--since", "1h", "-o", str(out), "-c", str(cfg)]) == 0
    text = out.read_text()
    assert "binance" in text and late not in text and "***" in text
