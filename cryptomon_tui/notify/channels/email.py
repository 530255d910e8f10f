"""E-mail over SMTP with aiosmtplib (async, so the engine loop never blocks): STARTTLS, implicit TLS or
plain (local relays only), optional auth, plain text with an HTML alternative."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import ClassVar

import aiosmtplib

from cryptomon_tui.config.notify import EmailChannelConfig
from cryptomon_tui.notify.channels.base import Channel, SendResult, Verdict
from cryptomon_tui.notify.format import build_view, clip, escape_html, plain_text
from cryptomon_tui.notify.model import Notice, NoticeKind

_DEFAULT_PORT = {"tls": 465, "starttls": 587, "none": 25}


def plaintext_refusal(host: str) -> str:
    return (
        f"refused: SMTP AUTH to {host} without TLS would send the password in clear; use security: starttls "
        "or tls, or set allow_plaintext_auth: true if the path is trusted"
    )


def email_message(notice: Notice, cfg: EmailChannelConfig, idempotency_key: str, now: float) -> EmailMessage:
    view = build_view(notice)
    msg = EmailMessage()
    subject = f"{cfg.subject_prefix} {view.emoji} {view.title}".strip()
    msg["Subject"] = clip(" ".join(subject.split()), 200)  # no newlines from untrusted text in a header
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = formatdate(now, usegmt=True)
    domain = cfg.sender.rpartition("@")[2] or "cryptomon.local"
    msg["Message-ID"] = make_msgid(idstring=idempotency_key.replace(":", "."), domain=domain)
    msg["X-Cryptomon-Idempotency-Key"] = idempotency_key
    if notice.incident_id:
        # every message about one incident names the same thread root, so mail clients show the resolve
        # and a late verdict (kind "analysis") as replies to the firing
        root = f"<cryptomon.incident.{notice.incident_id.replace('@', '.')}@{domain}>"
        if notice.kind in (NoticeKind.FIRING, NoticeKind.REOPENED):
            msg["References"] = root
        else:
            msg["In-Reply-To"] = root
            msg["References"] = root
    msg.set_content(plain_text(view))
    e = escape_html
    rows = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in view.fields)
    items = "".join(f"<li>{e(line)}</li>" for line in view.lines)
    summary = f"<p>{e(view.summary)}</p>" if view.summary and view.summary not in view.title else ""
    html = (
        f"<html><body><h2>{e(view.emoji)} {e(view.title)}</h2>{summary}"
        f"<table>{rows}</table>{f'<ul>{items}</ul>' if items else ''}"
        f"<p style='color:#777'>{e(view.footer)}</p></body></html>"
    )
    msg.add_alternative(html, subtype="html")
    return msg


class EmailChannel(Channel):
    type = "email"
    default_rate: ClassVar[tuple[float, float, int]] = (30.0, 60.0, 5)  # be a polite SMTP client
    config: EmailChannelConfig

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        cfg = self.config
        if cfg.plaintext_auth_refused:
            return SendResult(Verdict.BROKEN, plaintext_refusal(cfg.host))
        msg = email_message(notice, cfg, idempotency_key, self.clock.now())
        port = cfg.port or _DEFAULT_PORT[cfg.security]
        try:
            errors, response = await aiosmtplib.send(
                msg,
                hostname=cfg.host,
                port=port,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                use_tls=cfg.security == "tls",
                start_tls=cfg.security == "starttls",
                validate_certs=cfg.validate_certs,
                timeout=float(cfg.timeout),
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            return SendResult(Verdict.BROKEN, f"authentication refused: {exc.code} {exc.message}")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            verdict = Verdict.RETRY if codes and all(400 <= c < 500 for c in codes) else Verdict.BROKEN
            return SendResult(
                verdict, f"all recipients refused: {'; '.join(f'{r.code} {r.message}' for r in exc.recipients)}"
            )
        except aiosmtplib.SMTPNotSupported as exc:
            return SendResult(Verdict.BROKEN, f"server does not support it: {exc}")
        except aiosmtplib.SMTPResponseException as exc:
            verdict = Verdict.RETRY if 400 <= exc.code < 500 else Verdict.REJECTED
            if exc.code in (530, 535, 550, 553, 554) and not isinstance(exc, aiosmtplib.SMTPDataError):
                verdict = Verdict.BROKEN
            return SendResult(verdict, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            return SendResult(Verdict.RETRY, f"timeout after {cfg.timeout:g}s")
        except (aiosmtplib.SMTPException, OSError) as exc:
            if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
                # a wrong or self-signed certificate does not fix itself: a human must act
                return SendResult(Verdict.BROKEN, f"TLS certificate rejected: {exc}")
            return SendResult(Verdict.RETRY, f"connection failed: {type(exc).__name__}: {exc}")
        if errors:
            refused = "; ".join(f"{addr}: {r.code} {r.message}" for addr, r in errors.items())
            return SendResult(Verdict.SUCCESS, f"{response}; some recipients refused: {refused}")
        return SendResult(Verdict.SUCCESS, str(response))
