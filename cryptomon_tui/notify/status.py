"""Channel status read straight from the store (what ``cryptomon notify status`` shows without a daemon)."""

from __future__ import annotations

from cryptomon_tui.config.notify import NotifyConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.notify.channels.apprise_channel import apprise_available
from cryptomon_tui.notify.model import ChannelStats
from cryptomon_tui.notify.outbox import OutboxRepository


def scrub(text: str | None, config: NotifyConfig) -> str | None:
    """Belt and braces: answers are scrubbed when recorded, and again before anything is printed."""
    if text is None:
        return None
    for ch in config.channels.values():
        for secret in ch.secret_values:
            text = text.replace(secret, "***")
    return text


async def channel_status(config: NotifyConfig, outbox: OutboxRepository) -> list[JsonObject]:
    """Per channel, the JSON ``cryptomon notify status --json`` prints (the table reads the same rows)."""
    stats = await outbox.outbox_stats()
    states = await outbox.outbox_channel_states()
    names = sorted(set(config.channels) | set(stats))
    out: list[JsonObject] = []
    for name in names:
        cfg = config.channels.get(name)
        s = stats.get(name, ChannelStats())
        broken, reason = states.get(name, (False, None))
        if cfg is not None and cfg.type == "apprise" and not apprise_available():
            broken, reason = True, "the apprise package is not installed"
        out.append(
            {
                "channel": name,
                "type": cfg.type if cfg is not None else "(removed from config)",
                "enabled": bool(cfg and cfg.enabled and config.enabled),
                "last_success": iso_utc(s.last_success) if s.last_success else None,
                "failures": s.failed_attempts,
                "queued": s.queued + s.sending,
                "dead": s.dead,
                "sent": s.sent,
                "broken": broken,
                "broken_reason": scrub(reason, config),
                "last_error": scrub(s.last_error, config),
            }
        )
    return out
