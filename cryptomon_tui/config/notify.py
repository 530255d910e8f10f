"""The ``notify:`` section: channels, routes, grouping, storm control and the outbox's retry policy.

Secrets (webhook URLs, tokens, routing keys, SMTP passwords) are ``SecretStr`` so they are masked by
``config show`` and never end up in a repr; write them as ``${ENV_VAR}`` in the file.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import time as dtime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from cryptomon_tui.config.base import Section
from cryptomon_tui.kernel.units import Duration

CHANNEL_TYPES: tuple[str, ...] = (
    "discord",
    "slack",
    "email",
    "wecom",
    "telegram",
    "pagerduty",
    "webhook",
    "alertmanager",
    "apprise",
)
SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*\s*[a-z]*)\s*$")
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


class QuietHours(Section):
    """A daily window in which non-critical messages wait until it ends (critical ones pass)."""

    start: str
    end: str
    tz: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(str(v).strip()):
            raise ValueError("use HH:MM (24 h), e.g. 22:30")
        return str(v).strip()

    @field_validator("tz")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v

    def start_time(self) -> dtime:
        h, m = self.start.split(":")
        return dtime(int(h), int(m))

    def end_time(self) -> dtime:
        h, m = self.end.split(":")
        return dtime(int(h), int(m))


class RateLimit(Section):
    """A token bucket: ``count`` messages per ``per`` seconds, bursts up to ``burst``."""

    count: float = Field(gt=0)
    per: Duration = 1.0
    burst: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, v: object) -> object:
        # "20/min", "1/s", "120/m" or "2/10s"
        if isinstance(v, str):
            m = _RATE.match(v.lower())
            if not m:
                raise ValueError("write a rate as COUNT/UNIT, e.g. 20/min, 1/s or 5/10s")
            count, unit = float(m.group(1)), m.group(2).replace(" ", "") or "s"
            num = re.match(r"^(\d*)([a-z]+)$", unit)
            if not num or num.group(2) not in _RATE_UNITS:
                raise ValueError(f"unknown rate unit {unit!r}: use s, min or h")
            per = (float(num.group(1)) if num.group(1) else 1.0) * _RATE_UNITS[num.group(2)]
            return {"count": count, "per": per}
        return v

    @property
    def per_second(self) -> float:
        return self.count / self.per


class ChannelBase(Section):
    enabled: bool = True
    send_resolved: bool = True
    send_acknowledged: bool = True
    quiet_hours: QuietHours | None = None
    rate_limit: RateLimit | None = None  # None: the service's documented limit
    timeout: Duration = 10.0

    @property
    def secret_values(self) -> list[str]:
        """Every secret this channel holds, so error text and logs can be scrubbed of them."""
        out: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out.append(value.get_secret_value())
            elif isinstance(value, dict):
                out += [v.get_secret_value() for v in value.values() if isinstance(v, SecretStr)]
            elif isinstance(value, list):
                out += [v.get_secret_value() for v in value if isinstance(v, SecretStr)]
        return [s for s in out if s]


class DiscordChannelConfig(ChannelBase):
    type: Literal["discord"]
    url: SecretStr  # https://discord.com/api/webhooks/{id}/{token}
    username: str = "cryptomon"
    thread_id: str | None = None
    silent_below: Literal["info", "warning", "error", "critical"] | None = "warning"  # flags 4096 below this


class SlackChannelConfig(ChannelBase):
    type: Literal["slack"]
    url: SecretStr  # https://hooks.slack.com/services/T../B../XXXX


def is_loopback_host(host: str) -> bool:
    """localhost or a loopback address (a local relay: nothing leaves the machine)."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class EmailChannelConfig(ChannelBase):
    type: Literal["email"]
    host: str
    port: int | None = None  # default: 465 for tls, 587 for starttls, 25 for none
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str
    to: list[str] = Field(min_length=1)
    subject_prefix: str = "[cryptomon]"
    validate_certs: bool = True
    allow_plaintext_auth: bool = False  # security "none" with a password: refused unless the host is loopback

    @property
    def plaintext_auth(self) -> bool:
        """The password would cross the network in clear (AUTH without TLS)."""
        return self.security == "none" and (self.username is not None or self.password is not None)

    @property
    def plaintext_auth_refused(self) -> bool:
        """AUTH in clear to a host that is not this machine, and nobody said it is fine."""
        return self.plaintext_auth and not self.allow_plaintext_auth and not is_loopback_host(self.host)

    @field_validator("to", mode="before")
    @classmethod
    def _one_address(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


class WecomChannelConfig(ChannelBase):
    type: Literal["wecom"]
    url: SecretStr  # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY
    mentioned_list: list[str] = Field(default_factory=list)


class TelegramChannelConfig(ChannelBase):
    type: Literal["telegram"]
    token: SecretStr
    chat_id: str
    message_thread_id: int | None = None
    api_url: str = "https://api.telegram.org"

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id_text(cls, v: object) -> object:
        return str(v) if isinstance(v, int) else v


class PagerDutyChannelConfig(ChannelBase):
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str | None = None  # default: "cryptomon@<location>"
    client_url: str | None = None


class WebhookChannelConfig(ChannelBase):
    type: Literal["webhook"]
    url: SecretStr
    secret: SecretStr | None = None  # HMAC-SHA256 key for X-Cryptomon-Signature
    headers: dict[str, SecretStr] = Field(default_factory=dict)


class AlertmanagerChannelConfig(ChannelBase):
    type: Literal["alertmanager"]
    url: str  # base URL, e.g. http://127.0.0.1:9093
    refresh_interval: Duration = 60.0  # re-post firing alerts this often so Alertmanager keeps them
    resolve_timeout: Duration = 300.0  # endsAt = now + this while firing
    username: str | None = None
    password: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    generator_url: str | None = None


class AppriseChannelConfig(ChannelBase):
    type: Literal["apprise"]
    urls: list[SecretStr] = Field(min_length=1)  # apprise URLs, e.g. "mailto://..." or "tgram://..."


ChannelConfig = Annotated[
    DiscordChannelConfig
    | SlackChannelConfig
    | EmailChannelConfig
    | WecomChannelConfig
    | TelegramChannelConfig
    | PagerDutyChannelConfig
    | WebhookChannelConfig
    | AlertmanagerChannelConfig
    | AppriseChannelConfig,
    Field(discriminator="type"),
]


class RouteMatch(Section):
    """Every listed label must match one of its values; an absent key matches anything."""

    severity: list[Literal["info", "warning", "error", "critical"]] | None = None
    exchange: list[str] | None = None
    rule: list[str] | None = None
    probe: list[str] | None = None

    @field_validator("severity", "exchange", "rule", "probe", mode="before")
    @classmethod
    def _one_value(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


class Route(Section):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: list[str] = Field(min_length=1)
    group_wait: Duration = 10.0  # first notice of a new group waits this long to batch siblings
    group_interval: Duration = 60.0  # later changes of the same group are batched this long
    repeat_interval: Duration = 4 * 3600.0  # a still-firing, unacknowledged incident is re-sent this often
    reminder_interval: Duration | None = None  # overrides repeat_interval ("still failing for 42m")
    max_reminders: int = Field(default=3, ge=0)
    continue_: bool = Field(default=False, alias="continue")

    @property
    def reminder_every(self) -> float:
        return self.reminder_interval if self.reminder_interval is not None else self.repeat_interval


class NotifyConfig(Section):
    enabled: bool = True
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    # No routes: every enabled channel gets everything with the default timings.
    routes: list[Route] = Field(default_factory=list)
    max_attempts: int = Field(default=12, ge=1)
    backoff_base: Duration = 2.0
    backoff_cap: Duration = 600.0
    digest_threshold: int = Field(default=5, ge=2)  # this many notices due together on one channel -> one digest
    local_network_rules: list[str] = Field(default_factory=lambda: ["local_network"])
    poll_interval: Duration = 1.0  # dispatcher wake-up when idle (new messages wake it at once)

    @model_validator(mode="after")
    def _routes_name_channels(self) -> NotifyConfig:
        for i, route in enumerate(self.routes):
            for name in route.channels:
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none configured"
                    raise ValueError(f"routes[{i}] names unknown channel {name!r} (channels: {known})")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        return self

    def enabled_channels(self) -> dict[str, ChannelConfig]:
        if not self.enabled:
            return {}
        return {name: ch for name, ch in self.channels.items() if ch.enabled}

    def effective_routes(self) -> list[Route]:
        if self.routes:
            return self.routes
        names = list(self.enabled_channels())
        return [Route(channels=names)] if names else []
