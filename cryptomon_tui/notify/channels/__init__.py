"""One module per service; ``build_channel`` maps a config entry to its channel class."""

from __future__ import annotations

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.notify import ChannelBase
from cryptomon_tui.notify.channels.alertmanager import AlertmanagerChannel
from cryptomon_tui.notify.channels.apprise_channel import AppriseChannel, apprise_available
from cryptomon_tui.notify.channels.base import Channel, SendResult, Verdict
from cryptomon_tui.notify.channels.discord import DiscordChannel
from cryptomon_tui.notify.channels.email import EmailChannel
from cryptomon_tui.notify.channels.pagerduty import PagerDutyChannel
from cryptomon_tui.notify.channels.slack import SlackChannel
from cryptomon_tui.notify.channels.telegram import TelegramChannel
from cryptomon_tui.notify.channels.webhook import WebhookChannel
from cryptomon_tui.notify.channels.wecom import WecomChannel

CHANNEL_CLASSES: dict[str, type[Channel]] = {
    cls.type: cls
    for cls in (
        DiscordChannel,
        SlackChannel,
        EmailChannel,
        WecomChannel,
        TelegramChannel,
        PagerDutyChannel,
        WebhookChannel,
        AlertmanagerChannel,
        AppriseChannel,
    )
}


class ChannelUnavailable(Exception):
    """The channel type needs something that is not installed (apprise)."""


def build_channel(name: str, config: ChannelBase, clock: Clock, location: str = "local") -> Channel:
    kind = str(getattr(config, "type", ""))
    if kind == "apprise" and not apprise_available():
        raise ChannelUnavailable(f"channel {name!r} needs the apprise package: pip install 'cryptomon-tui[apprise]'")
    return CHANNEL_CLASSES[kind](name, config, clock, location)


__all__ = ["CHANNEL_CLASSES", "Channel", "ChannelUnavailable", "SendResult", "Verdict", "build_channel"]
