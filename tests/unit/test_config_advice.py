"""Issue 12 items 6 and 8: `config check` warns about settings that load but will not do what they seem to."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptomon_tui.cli import main
from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.notify.channels.base import Verdict
from cryptomon_tui.notify.channels.email import EmailChannel
from cryptomon_tui.notify.model import Notice, NoticeKind

EMAIL = {"type": "email", "sender": "a@example.org", "to": "b@example.org", "security": "none",
         "username": "bot", "password": "pw-123456"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def test_config_check_warns_about_plaintext_auth_and_an_unpriced_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path, """
notify:
  channels:
    far: {type: email, host: mail.example.org, port: 25, security: none, username: bot, password: pw-123456,
          sender: a@example.org, to: b@example.org}
    near: {type: email, host: 127.0.0.1, port: 25, security: none, username: bot, password: pw-123456,
           sender: a@example.org, to: b@example.org}
    trusted: {type: email, host: relay.lan, security: none, username: bot, password: pw-123456,
              sender: a@example.org, to: b@example.org, allow_plaintext_auth: true}
analysis:
  llm: {base_url: "http://127.0.0.1:1/v1", model: mystery-model-9}
""")
    assert main(["config", "check", cfg]) == 0
    out = capsys.readouterr().out
    assert "notify.channels.far: security none with a login to mail.example.org" in out
    assert "notify.channels.near" not in out  # loopback: nothing crosses the network
    assert "notify.channels.trusted: allow_plaintext_auth sends the SMTP password to relay.lan in clear" in out
    assert "'mystery-model-9' has no known price: LLM calls are refused" in out

    priced = write(tmp_path, """
analysis:
  llm: {base_url: "http://127.0.0.1:1/v1", model: mystery-model-9, price_in: 0, price_out: 0}
""")
    assert main(["config", "check", priced]) == 0
    assert "no known price" not in capsys.readouterr().out
    half = write(tmp_path, """
analysis:
  llm: {base_url: "http://127.0.0.1:1/v1", model: mystery-model-9, price_in: 1}
""")
    assert main(["config", "check", half]) == 2
    assert "price_in and price_out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "allow", "refused"),
    [("mail.example.org", False, True), ("mail.example.org", True, False), ("127.0.0.1", False, False),
     ("localhost", False, False), ("::1", False, False), ("10.0.0.5", False, True)],
)
async def test_plaintext_smtp_auth_is_refused_off_loopback(host: str, allow: bool, refused: bool) -> None:
    cfg = config_from_data(
        {"notify": {"channels": {"m": {**EMAIL, "host": host, "port": 9, "timeout": "1s",
                                       "allow_plaintext_auth": allow}}}}
    )
    channel = EmailChannel("m", cfg.notify.channels["m"], FakeClock())
    result = await channel.send(Notice(kind=NoticeKind.TEST, ts=0.0), "k")
    if refused:
        assert result.verdict is Verdict.BROKEN and "in clear" in result.answer
    else:  # it tries (and, with nothing listening on port 9, fails to connect)
        assert "in clear" not in result.answer
