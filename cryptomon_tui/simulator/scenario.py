"""Scenarios: YAML timelines of faults per exchange, validated, with machine-readable ground truth.

A scenario file::

    name: outage                  # optional, defaults to the file name
    description: one line for `cryptomon simulate --list`
    duration: 30s                 # length of one cycle; required when loop: true
    loop: true                    # start over after `duration` (for demos)
    seed: 7                       # random source for rates, distributions and prices
    faults:
      - exchange: binance         # binance | binance_futures | bybit | okx | deribit | all | a list of them
        type: errors              # see below
        start: 3s                 # offset from scenario start: 500ms, 3s, 1m ... or plain seconds
        duration: 5s              # or `end: 8s`; neither = until the end of the cycle (or forever)
        probes: [ticker, book]    # optional: only these probe names (ping,time,status,ticker,book,account)
        paths: ["/api/v3/*"]      # optional: only request paths matching these globs
        rate: 1.0                 # optional: share of matching requests hit (0..1), default all
        expect: http_5xx          # optional: override the expected probe outcome (ground truth)
        status: 500               # type-specific keys ...

Fault types and their keys:

- ``latency``: ``ms`` = a number (fixed) or ``normal(mean, sd)``, ``lognormal(median, sigma)``,
  ``uniform(low, high)`` (all in ms). Added to the answer time, measured from request arrival.
- ``drift``: ``from_ms`` .. ``to_ms``: added latency growing linearly across the fault.
- ``errors``: ``status`` (HTTP) and/or ``code`` (exchange error code) plus optional ``message``,
  rendered in the exchange's own envelope (Bybit inside HTTP 200, OKX string codes, Deribit
  JSON-RPC errors with HTTP 400, Binance negative codes).
- ``rate_limit``: the exchange's rate-limit answer (Binance 429/-1003, Bybit 10006 in HTTP 200,
  OKX 429/50011, Deribit 10028); ``retry_after`` (default: until the fault ends).
- ``ban``: Binance 418/-1003 "IP banned until <ms>" + Retry-After, Bybit HTTP 403 "access too
  frequent"; ``ban_for`` (default: until the fault ends). Binance and Bybit only.
- ``weight_climb``: the usage headers climb from ``usage_from`` to ``usage_to`` (shares of the
  limit, default 0.1 .. 0.98) across the fault. Binance and Bybit only (the others send none).
- ``hang``: accept the request and never answer (the client times out).
- ``refuse``: close the listening socket for the fault's duration (connection refused), then
  reopen it on the same port. Applies to the whole exchange port (no probe/path filter).
- ``reset``: accept, then reset the TCP connection (SO_LINGER 0).
- ``malformed``: truncated JSON (``status`` default 200, ``keep`` = share of the body kept).
- ``html``: an HTML error page from a proxy: ``status`` 403 or 502 (default), ``page``
  cloudfront | cloudflare | nginx.
- ``clock_skew``: server time offset ``offset_ms``, optionally drifting to ``to_ms`` across the
  fault.
- ``maintenance``: Binance system/status 1 plus 503/-1016 elsewhere; Bybit system/status lists an
  ongoing item; OKX 503/50001 and an ongoing status item; Deribit 11051 and public/status locked.
  ``block: false`` only changes the status endpoints.
- ``huge_body``: a 200 JSON body of ``size_mb`` (default 50) streamed out.
- ``wrong_types``: the normal JSON with every value's type changed (strings become numbers, numbers
  strings, lists objects ...).

Each fault's expected probe outcome (``Scenario.expected()``) is the ground truth tests and
benchmarks check detection against.
"""

from __future__ import annotations

import fnmatch
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from cryptomon_tui.config.errors import ConfigError, ConfigProblem
from cryptomon_tui.config.loader import line_of, pretty_loc, validation_message, yaml_line_map, yaml_problem
from cryptomon_tui.kernel.jsonvalue import finite
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.streams import StreamOutcome
from cryptomon_tui.kernel.units import Duration

EXCHANGES: tuple[str, ...] = ("binance", "binance_futures", "bybit", "okx", "deribit")
PORT_OFFSETS: dict[str, int] = {name: i for i, name in enumerate(EXCHANGES)}
PROBE_NAMES: tuple[str, ...] = ("ping", "time", "status", "ticker", "book", "account")
FOREVER = math.inf


class ScenarioError(ConfigError):
    """A scenario file that does not validate; names the file, the key path and the line."""


# --------------------------------------------------------------------------- latency distributions

_DIST = re.compile(r"^\s*(fixed|normal|lognormal|uniform)\s*\(\s*([-\d.eE+]+)\s*(?:,\s*([-\d.eE+]+)\s*)?\)\s*$")


@dataclass(frozen=True, slots=True)
class LatencyDist:
    """Added latency in ms: fixed, normal(mean, sd), lognormal(median, sigma) or uniform(lo, hi)."""

    kind: str
    a: float
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "normal":
            value = rng.gauss(self.a, self.b)
        elif self.kind == "lognormal":
            value = self.a * math.exp(rng.gauss(0.0, self.b))
        else:
            value = rng.uniform(self.a, self.b)
        return value if value > 0.0 else 0.0

    @property
    def typical_ms(self) -> float:
        return (self.a + self.b) / 2 if self.kind == "uniform" else self.a

    def __str__(self) -> str:
        return f"{self.a:g}" if self.kind == "fixed" else f"{self.kind}({self.a:g}, {self.b:g})"


def parse_latency(value: object) -> LatencyDist:
    if isinstance(value, LatencyDist):
        return value
    if isinstance(value, bool):
        raise ValueError("expected milliseconds or normal(mean, sd) / lognormal(median, sigma) / uniform(lo, hi)")
    if isinstance(value, int | float):
        number = finite(value)
        if number is None:  # .nan / .inf / 1e400 in YAML: no latency a fault can add
            raise ValueError("latency must be a finite number of milliseconds")
        if number < 0:
            raise ValueError("latency cannot be negative")
        return LatencyDist("fixed", number)
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_latency(float(text))
        except ValueError:
            pass
        match = _DIST.match(text)
        if match:
            kind, a_text, b_text = match.groups()
            a = _finite_param(a_text)
            if kind == "fixed":
                if b_text is not None:
                    raise ValueError("fixed(ms) takes one value")
                return parse_latency(a)
            if b_text is None:
                raise ValueError(f"{kind}() takes two values")
            b = _finite_param(b_text)
            if a < 0 or b < 0:
                raise ValueError("latency parameters cannot be negative")
            if kind == "uniform" and b < a:
                raise ValueError("uniform(lo, hi) needs lo <= hi")
            if kind == "lognormal" and a == 0:
                raise ValueError("lognormal(median, sigma) needs median > 0")
            return LatencyDist(kind, a, b)
    raise ValueError(
        f"{value!r} is not a latency: use milliseconds (50), normal(mean, sd), lognormal(median, sigma) "
        "or uniform(lo, hi)"
    )


def _finite_param(text: str) -> float:
    number = finite(text)
    if number is None:  # "1e999" would be an infinite mean
        raise ValueError(f"{text!r} is not a finite number")
    return number


Latency = Annotated[LatencyDist, BeforeValidator(parse_latency), PlainSerializer(str, return_type=str)]


# --------------------------------------------------------------------------- faults


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class FaultBase(_Model):
    """Keys every fault has. ``start``/``end`` are seconds from scenario (or injection) start."""

    type: str
    exchange: tuple[str, ...] = ("all",)
    start: Duration = 0.0
    duration: Duration | None = None
    end: Duration | None = None
    probes: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    expect: Outcome | None = None
    note: str = ""

    # Exchanges the type makes sense for ("all" expands to these).
    supported: ClassVar[tuple[str, ...]] = EXCHANGES
    # Types that act on the connection/listener, where a rate or a filter has no meaning.
    whole_port: ClassVar[bool] = False
    rate_allowed: ClassVar[bool] = True

    @field_validator("exchange", mode="before")
    @classmethod
    def _exchanges(cls, v: object) -> tuple[str, ...]:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple) or not v:
            raise ValueError(f"expected one of {', '.join(EXCHANGES)}, 'all', or a list of them")
        out: list[str] = []
        for item in v:
            name = str(item).strip().lower()
            if name == "binance_spot":
                name = "binance"
            if name != "all" and name not in EXCHANGES:
                raise ValueError(f"unknown exchange {item!r}: use one of {', '.join(EXCHANGES)} or 'all'")
            out.append(name)
        return tuple(out)

    @field_validator("probes", mode="before")
    @classmethod
    def _probes(cls, v: object) -> tuple[object, ...] | None:
        if v is None:
            return None
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple):  # a number or a mapping here was a TypeError out of validation
            raise ValueError(f"expected a probe name or a list of them ({', '.join(PROBE_NAMES)})")
        for name in v:
            if name not in PROBE_NAMES:
                raise ValueError(f"unknown probe {name!r}: use {', '.join(PROBE_NAMES)}")
        return tuple(v)

    @field_validator("paths", mode="before")
    @classmethod
    def _paths(cls, v: object) -> object:
        if isinstance(v, str):
            v = [v]
        if v is not None:
            if not isinstance(v, list | tuple):  # a number here was a TypeError out of validation
                raise ValueError("expected a path pattern or a list of them")
            for p in v:
                if not str(p).startswith("/"):
                    raise ValueError(f"a path pattern starts with '/', got {p!r}")
        return v

    @model_validator(mode="after")
    def _check(self) -> FaultBase:
        if self.duration is not None and self.end is not None:
            raise ValueError("give either duration or end, not both")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end:g}s) must be after start ({self.start:g}s)")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be greater than 0")
        if self.whole_port and (self.probes or self.paths):
            raise ValueError(f"{self.type} acts on the whole port: probes/paths filters do not apply")
        if not self.rate_allowed and self.rate != 1.0:
            raise ValueError(f"{self.type} has no rate (it is either on or off)")
        for name in self.exchange:
            if name != "all" and name not in self.supported:
                raise ValueError(
                    f"{self.type} does not apply to {name} (only {', '.join(self.supported)}); use 'all' to "
                    "apply it wherever it makes sense"
                )
        return self

    # ---- timeline

    @property
    def end_s(self) -> float:
        if self.end is not None:
            return self.end
        if self.duration is not None:
            return self.start + self.duration
        return FOREVER

    def exchanges(self) -> tuple[str, ...]:
        if "all" in self.exchange:
            return tuple(e for e in EXCHANGES if e in self.supported)
        return tuple(dict.fromkeys(self.exchange))

    def matches(self, probe: str | None, path: str) -> bool:
        if self.probes is not None and probe not in self.probes:
            return False
        return not (self.paths is not None and not any(fnmatch.fnmatchcase(path, pat) for pat in self.paths))

    # ---- ground truth

    def expected_outcome(self, exchange: str) -> Outcome:
        """What a correct probe should report while this fault hits it."""
        return self.expect or self._natural_outcome(exchange)

    def _natural_outcome(self, exchange: str) -> Outcome:  # pragma: no cover - overridden
        return Outcome.OK

    def acceptable_outcomes(self, exchange: str) -> frozenset[Outcome]:
        return frozenset({self.expected_outcome(exchange)})

    def affected_probes(self, exchange: str) -> frozenset[str] | None:
        """Probe names that see the fault (None = every probe)."""
        return None if self.probes is None else frozenset(self.probes)

    # Stream faults act on WebSocket streams only; REST answers stay as they are.
    stream_fault: ClassVar[bool] = False

    def stream_outcome(self) -> StreamOutcome | None:
        """What a correct stream probe should report while this fault hits (None: not a stream fault)."""
        return None


class LatencyFault(FaultBase):
    type: Literal["latency"] = "latency"
    ms: Latency

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.OK


class DriftFault(FaultBase):
    type: Literal["drift"] = "drift"
    from_ms: float = Field(default=0.0, ge=0)
    to_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _bounded(self) -> DriftFault:
        if self.end_s == FOREVER:
            raise ValueError("drift needs duration or end (it grows across the fault)")
        return self

    def added_ms(self, t_in_fault: float) -> float:
        span = self.end_s - self.start
        share = min(1.0, max(0.0, t_in_fault / span)) if span > 0 else 1.0
        return self.from_ms + (self.to_ms - self.from_ms) * share

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.OK


# Exchange error codes whose meaning is fixed by the reference (exchanges.md) -> outcome.
_CODE_OUTCOMES: dict[str, dict[str, Outcome]] = {
    "binance": {
        "-1003": Outcome.RATE_LIMITED,
        "-1015": Outcome.RATE_LIMITED,
        "-1008": Outcome.HTTP_5XX,  # venue overloaded (server-side; the monitor still backs off)
        "-1004": Outcome.HTTP_5XX,
        "-1099": Outcome.AUTH,
        "-1021": Outcome.CLOCK_SKEW,
        "-1022": Outcome.AUTH,
        "-2014": Outcome.AUTH,
        "-2015": Outcome.AUTH,
        "-1002": Outcome.AUTH,
        "-1016": Outcome.MAINTENANCE,
    },
    "bybit": {
        "10006": Outcome.RATE_LIMITED,
        "10002": Outcome.CLOCK_SKEW,
        "10003": Outcome.AUTH,
        "10004": Outcome.AUTH,
        "10005": Outcome.AUTH,
        "10007": Outcome.AUTH,
        "10010": Outcome.AUTH,
        "33004": Outcome.AUTH,
        "10008": Outcome.AUTH,
    },
    "okx": {
        "50011": Outcome.RATE_LIMITED,
        "50061": Outcome.RATE_LIMITED,
        "50040": Outcome.RATE_LIMITED,
        "50102": Outcome.CLOCK_SKEW,
        "50112": Outcome.AUTH,  # malformed timestamp header, not drift (that is 50102)
        "50013": Outcome.HTTP_5XX,  # venue overloaded
        "50007": Outcome.AUTH,
        "50008": Outcome.AUTH,
        "50101": Outcome.AUTH,
        "50105": Outcome.AUTH,
        "50110": Outcome.AUTH,
        "50111": Outcome.AUTH,
        "50113": Outcome.AUTH,
        "50114": Outcome.AUTH,
        "50001": Outcome.MAINTENANCE,
        "50005": Outcome.MAINTENANCE,
        "50026": Outcome.HTTP_5XX,
    },
    "deribit": {
        "10028": Outcome.RATE_LIMITED,
        "10066": Outcome.RATE_LIMITED,
        "10047": Outcome.RATE_LIMITED,
        "13004": Outcome.AUTH,
        "13009": Outcome.AUTH,
        "10000": Outcome.AUTH,
        "13021": Outcome.AUTH,
        "13403": Outcome.AUTH,
        "9999": Outcome.AUTH,
        "11042": Outcome.AUTH,
        "13001": Outcome.AUTH,
        "13002": Outcome.AUTH,
        "13007": Outcome.AUTH,
        "11051": Outcome.MAINTENANCE,
        "13025": Outcome.MAINTENANCE,
        "13503": Outcome.MAINTENANCE,
        "13028": Outcome.MAINTENANCE,
        "11056": Outcome.MAINTENANCE,
        "10041": Outcome.MAINTENANCE,
    },
}
_CODE_OUTCOMES["binance_futures"] = _CODE_OUTCOMES["binance"]

# Codes that mean "the exchange failed internally" (exchanges.md): a 5xx reading is defensible.
_INTERNAL_CODES: dict[str, frozenset[str]] = {
    "binance": frozenset({"-1000", "-1001", "-1006", "-1007"}),
    "binance_futures": frozenset({"-1000", "-1001", "-1006", "-1007"}),
    "bybit": frozenset({"10000", "10016"}),
    "okx": frozenset({"50026", "50004", "50013"}),
    "deribit": frozenset({"11094", "10001"}),
}

# Where an exchange puts an error when the fault names only a code.
DEFAULT_ERROR_STATUS: dict[str, int] = {
    "binance": 400,
    "binance_futures": 400,
    "bybit": 200,
    "okx": 200,
    "deribit": 400,
}


def outcome_for_status(status: int) -> Outcome:
    if status >= 500:
        return Outcome.HTTP_5XX
    if status == 429:
        return Outcome.RATE_LIMITED
    if status == 418:
        return Outcome.IP_BANNED
    if status >= 400:
        return Outcome.HTTP_4XX
    return Outcome.EXCHANGE_ERROR


class ErrorsFault(FaultBase):
    """An error envelope. ``echo`` plays a careless gateway: the message (and extra response headers)
    repeat the request's credential headers and query, plus any ``leak`` strings (a secret it should never
    have seen), each raw, URL-encoded and base64-encoded: the monitor must mask all of them."""

    type: Literal["errors"] = "errors"
    status: int | None = Field(default=None, ge=200, le=599)
    code: int | str | None = None
    message: str | None = None
    echo: bool = False
    leak: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> ErrorsFault:
        if self.status is None and self.code is None:
            raise ValueError("errors needs status and/or code")
        if self.code is not None and not re.fullmatch(r"-?\d+(_\d+)?", str(self.code)):
            raise ValueError(f"code must be a number (or OKX 'NNNNN_N'), got {self.code!r}")
        return self

    def status_for(self, exchange: str) -> int:
        if self.status is not None:
            return self.status
        return DEFAULT_ERROR_STATUS[exchange]

    def _natural_outcome(self, exchange: str) -> Outcome:
        status = self.status_for(exchange)
        if self.code is not None:
            by_code = _CODE_OUTCOMES.get(exchange, {}).get(str(self.code))
            if by_code is Outcome.RATE_LIMITED and exchange.startswith("binance") and status == 418:
                return Outcome.IP_BANNED
            if by_code is not None:
                return by_code
        return outcome_for_status(status)

    def acceptable_outcomes(self, exchange: str) -> frozenset[Outcome]:
        main = self.expected_outcome(exchange)
        status = self.status_for(exchange)
        extra = {outcome_for_status(status)} if status >= 400 else {Outcome.EXCHANGE_ERROR}
        if main in (Outcome.EXCHANGE_ERROR, Outcome.HTTP_4XX) and status >= 400:
            extra |= {Outcome.EXCHANGE_ERROR, Outcome.HTTP_4XX}
        if self.code is not None and str(self.code) in _INTERNAL_CODES.get(exchange, ()):
            extra.add(Outcome.HTTP_5XX)  # "internal error, outcome unknown" reads as a server-side failure
        return frozenset({main, *extra})


class RateLimitFault(FaultBase):
    type: Literal["rate_limit"] = "rate_limit"
    retry_after: Duration | None = None

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.RATE_LIMITED


class BanFault(FaultBase):
    type: Literal["ban"] = "ban"
    supported: ClassVar[tuple[str, ...]] = ("binance", "binance_futures", "bybit")
    ban_for: Duration | None = None

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.IP_BANNED


class WeightClimbFault(FaultBase):
    type: Literal["weight_climb"] = "weight_climb"
    supported: ClassVar[tuple[str, ...]] = ("binance", "binance_futures", "bybit")
    rate_allowed: ClassVar[bool] = False
    usage_from: float = Field(default=0.1, ge=0.0, le=1.0)
    usage_to: float = Field(default=0.98, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _bounded(self) -> WeightClimbFault:
        if self.end_s == FOREVER:
            raise ValueError("weight_climb needs duration or end (it climbs across the fault)")
        return self

    def usage(self, t_in_fault: float) -> float:
        span = self.end_s - self.start
        share = min(1.0, max(0.0, t_in_fault / span)) if span > 0 else 1.0
        return self.usage_from + (self.usage_to - self.usage_from) * share

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.OK


class HangFault(FaultBase):
    type: Literal["hang"] = "hang"

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.TIMEOUT


class RefuseFault(FaultBase):
    type: Literal["refuse"] = "refuse"
    whole_port: ClassVar[bool] = True
    rate_allowed: ClassVar[bool] = False

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.CONNECT


class ResetFault(FaultBase):
    type: Literal["reset"] = "reset"

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.RESET


class MalformedFault(FaultBase):
    type: Literal["malformed"] = "malformed"
    status: int = Field(default=200, ge=200, le=599)
    keep: float = Field(default=0.5, gt=0.0, lt=1.0)

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.BAD_PAYLOAD if self.status < 400 else outcome_for_status(self.status)

    def acceptable_outcomes(self, exchange: str) -> frozenset[Outcome]:
        return frozenset({self.expected_outcome(exchange), Outcome.BAD_PAYLOAD})


class HtmlFault(FaultBase):
    type: Literal["html"] = "html"
    status: int = Field(default=502, ge=200, le=599)
    page: Literal["cloudfront", "cloudflare", "nginx"] | None = None

    def _natural_outcome(self, exchange: str) -> Outcome:
        if self.status < 400:
            return Outcome.BAD_PAYLOAD
        return outcome_for_status(self.status)

    def acceptable_outcomes(self, exchange: str) -> frozenset[Outcome]:
        main = self.expected_outcome(exchange)
        out = {main, Outcome.BAD_PAYLOAD}
        if self.status == 403 and exchange in ("bybit", "binance", "binance_futures"):
            out.add(Outcome.IP_BANNED)  # Bybit's IP ban is a bare 403; Binance's WAF may be blocking the IP
        return frozenset(out)


class ClockSkewFault(FaultBase):
    type: Literal["clock_skew"] = "clock_skew"
    rate_allowed: ClassVar[bool] = False
    offset_ms: float
    to_ms: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> ClockSkewFault:
        if self.to_ms is not None and self.end_s == FOREVER:
            raise ValueError("a drifting clock_skew (to_ms) needs duration or end")
        return self

    def skew_ms(self, t_in_fault: float) -> float:
        if self.to_ms is None:
            return self.offset_ms
        span = self.end_s - self.start
        share = min(1.0, max(0.0, t_in_fault / span)) if span > 0 else 1.0
        return self.offset_ms + (self.to_ms - self.offset_ms) * share

    def _natural_outcome(self, exchange: str) -> Outcome:
        # Unsigned probes still succeed; the offset shows in clock_offset_ms.
        return Outcome.OK

    def acceptable_outcomes(self, exchange: str) -> frozenset[Outcome]:
        return frozenset({self.expected_outcome(exchange), Outcome.CLOCK_SKEW})


class MaintenanceFault(FaultBase):
    type: Literal["maintenance"] = "maintenance"
    rate_allowed: ClassVar[bool] = False
    block: bool = True
    title: str = "System upgrade"

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.MAINTENANCE

    def affected_probes(self, exchange: str) -> frozenset[str] | None:
        # Bybit keeps serving market data during maintenance; only its status endpoint tells.
        if exchange == "bybit" or (not self.block and exchange != "binance_futures"):
            base = frozenset({"status"})
            return base if self.probes is None else base & frozenset(self.probes)
        return super().affected_probes(exchange)


class HugeBodyFault(FaultBase):
    type: Literal["huge_body"] = "huge_body"
    size_mb: float = Field(default=50.0, gt=0, le=2048)

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.BAD_PAYLOAD


class WrongTypesFault(FaultBase):
    type: Literal["wrong_types"] = "wrong_types"

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.BAD_PAYLOAD

    def acceptable_outcomes(self, exchange: str) -> frozenset[Outcome]:
        # A mangled envelope code may read as an exchange error; it must never read as ok.
        return frozenset({Outcome.BAD_PAYLOAD, Outcome.EXCHANGE_ERROR})



# --------------------------------------------------------------------------- stream faults
# They hit the exchange's WebSocket streams (the simulator's publishers), never REST; REST stays
# healthy, which is the case that bites bots most: "REST ok, stream stale".


class _StreamFault(FaultBase):
    whole_port: ClassVar[bool] = True
    stream_fault: ClassVar[bool] = True
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.OK

    def _natural_outcome(self, exchange: str) -> Outcome:
        return Outcome.OK  # REST is untouched

    def affected_probes(self, exchange: str) -> frozenset[str] | None:
        return frozenset()  # no REST probe sees it

    def stream_outcome(self) -> StreamOutcome | None:
        return self.outcome_of_stream


class WsStallFault(_StreamFault):
    """The socket stays open and answers heartbeats, but no data arrives (the silent stall)."""

    type: Literal["ws_stall"] = "ws_stall"
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.WS_STALE


class WsDripFault(_StreamFault):
    """Data slows to one message every ``every`` (a slow drip)."""

    type: Literal["ws_drip"] = "ws_drip"
    every: Duration = 5.0
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.WS_STALE


class WsBurstFault(_StreamFault):
    """Data arrives in bursts of ``count`` messages every ``every`` seconds, silence in between."""

    type: Literal["ws_burst"] = "ws_burst"
    count: int = Field(default=50, ge=1, le=100_000)
    every: Duration = 6.0
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.WS_STALE


class WsSeqGapFault(_StreamFault):
    """Update numbers skip ``skip`` (contiguous streams) or jump back (growing-only streams)."""

    type: Literal["ws_seq_gap"] = "ws_seq_gap"
    skip: int = Field(default=5, ge=1, le=1_000_000)
    every: Duration = 1.0
    supported: ClassVar[tuple[str, ...]] = ("binance", "binance_futures", "bybit")
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.WS_GAP


class WsLagFault(_StreamFault):
    """Event times are stamped ``ms`` before the moment the frame leaves (a lagging matching feed)."""

    type: Literal["ws_lag"] = "ws_lag"
    ms: float = Field(default=2000.0, gt=0.0, le=3_600_000.0)
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.WS_LAG


class WsHeartbeatFault(_StreamFault):
    """The server stops answering pings and drops the socket after ``after`` ("pong timeout")."""

    type: Literal["ws_heartbeat"] = "ws_heartbeat"
    after: Duration = 25.0
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.WS_HEARTBEAT


class WsDisconnectFault(_StreamFault):
    """Every connection is closed ``every`` seconds after it opens, with close ``code``."""

    type: Literal["ws_disconnect"] = "ws_disconnect"
    code: int = Field(default=1011, ge=1000, le=4999)
    every: Duration = 5.0
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.WS_RECONNECT_STORM


class WsShutdownFault(_StreamFault):
    """A planned shutdown notice (Binance serverShutdown, OKX 64008, ...) then a close: not a fault."""

    type: Literal["ws_shutdown"] = "ws_shutdown"
    after: Duration = 1.0
    supported: ClassVar[tuple[str, ...]] = ("binance", "binance_futures", "okx")
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.OK


class WsMalformedFault(_StreamFault):
    """A share (``rate``) of data frames is garbage; the rest are fine (read, never a crash)."""

    type: Literal["ws_malformed"] = "ws_malformed"
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.OK


class WsHugeFrameFault(_StreamFault):
    """One frame of ``mb`` megabytes per connection (the client must refuse it, not buffer it)."""

    type: Literal["ws_huge"] = "ws_huge"
    mb: float = Field(default=50.0, gt=0.0, le=200.0)
    rate_allowed: ClassVar[bool] = False
    outcome_of_stream: ClassVar[StreamOutcome] = StreamOutcome.WS_DISCONNECTED


STREAM_FAULT_CLASSES: tuple[type[FaultBase], ...] = (
    WsStallFault, WsDripFault, WsBurstFault, WsSeqGapFault, WsLagFault, WsHeartbeatFault,
    WsDisconnectFault, WsShutdownFault, WsMalformedFault, WsHugeFrameFault,
)

Fault = Annotated[
    LatencyFault
    | DriftFault
    | ErrorsFault
    | RateLimitFault
    | BanFault
    | WeightClimbFault
    | HangFault
    | RefuseFault
    | ResetFault
    | MalformedFault
    | HtmlFault
    | ClockSkewFault
    | MaintenanceFault
    | HugeBodyFault
    | WrongTypesFault
    | WsStallFault
    | WsDripFault
    | WsBurstFault
    | WsSeqGapFault
    | WsLagFault
    | WsHeartbeatFault
    | WsDisconnectFault
    | WsShutdownFault
    | WsMalformedFault
    | WsHugeFrameFault,
    Field(discriminator="type"),
]
_ALL_FAULT_CLASSES: tuple[type[FaultBase], ...] = (
    LatencyFault,
    DriftFault,
    ErrorsFault,
    RateLimitFault,
    BanFault,
    WeightClimbFault,
    HangFault,
    RefuseFault,
    ResetFault,
    MalformedFault,
    HtmlFault,
    ClockSkewFault,
    MaintenanceFault,
    HugeBodyFault,
    WrongTypesFault,
    *STREAM_FAULT_CLASSES,
)
FAULT_TYPES: dict[str, type[FaultBase]] = {cls.model_fields["type"].default: cls for cls in _ALL_FAULT_CLASSES}
_FAULT_ADAPTER: TypeAdapter[FaultBase] = TypeAdapter(Fault)


def make_fault(data: Mapping[str, object] | FaultBase) -> FaultBase:
    """Build a fault from a mapping (``{"type": "hang", "exchange": "bybit", ...}``)."""
    if isinstance(data, FaultBase):
        return data
    fault: FaultBase = _FAULT_ADAPTER.validate_python(data)
    return fault


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True, slots=True)
class ExpectedFault:
    """One fault on one exchange over one time span: what a correct monitor should see.

    ``start``/``end`` are seconds from scenario start; ``probes`` None means every probe.
    ``acceptable`` also lists outcomes that are defensible readings of the same fault (an
    HTML 403 from a proxy may be read as bad_payload or http_4xx, for instance).
    """

    exchange: str
    type: str
    start: float
    end: float
    outcome: Outcome
    probes: frozenset[str] | None
    acceptable: frozenset[Outcome]
    fault_index: int
    detail: str = ""
    rate: float = 1.0  # share of requests the fault hits (the rest answer normally)
    stream_outcome: StreamOutcome | None = None  # stream faults: what the stream probe should say

    def active_at(self, t: float) -> bool:
        return self.start <= t < self.end

    def outcome_for(self, probe: str) -> Outcome | None:
        """The expected outcome of ``probe`` during the fault, None if the probe is not affected."""
        if self.probes is not None and probe not in self.probes:
            return None
        return self.outcome


# --------------------------------------------------------------------------- scenario


class Scenario(_Model):
    name: str = "custom"
    description: str = ""
    duration: Duration | None = None
    loop: bool = False
    seed: int | None = None
    faults: tuple[Fault, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.loop and not self.duration:
            raise ValueError("loop: true needs a duration (the length of one cycle)")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be greater than 0")
        return self

    @property
    def cycle_s(self) -> float:
        return self.duration if self.duration else FOREVER

    def expected(self, horizon: float | None = None) -> list[ExpectedFault]:
        """Ground truth, one entry per (fault, exchange, cycle), sorted by start.

        ``horizon`` (seconds from start) unrolls looping scenarios; default: one cycle.
        """
        cycle = self.cycle_s
        cycles = 1
        if self.loop and horizon is not None and cycle < FOREVER:
            cycles = max(1, math.ceil(horizon / cycle))
        out: list[ExpectedFault] = []
        for n in range(cycles):
            base = n * cycle if cycle < FOREVER else 0.0
            for i, fault in enumerate(self.faults):
                end = min(fault.end_s, cycle)
                if fault.start >= end:
                    continue
                for ex in fault.exchanges():
                    item = ExpectedFault(
                        exchange=ex,
                        type=fault.type,
                        start=base + fault.start,
                        end=base + end,
                        outcome=fault.expected_outcome(ex),
                        probes=fault.affected_probes(ex),
                        acceptable=fault.acceptable_outcomes(ex),
                        fault_index=i,
                        detail=fault.note,
                        rate=fault.rate,
                        stream_outcome=fault.stream_outcome(),
                    )
                    if horizon is None or item.start < horizon:
                        out.append(item)
        out.sort(key=lambda e: (e.start, e.exchange))
        return out


# --------------------------------------------------------------------------- loading

_SCENARIO_PACKAGE = "cryptomon_tui.simulator.scenarios"


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in the package."""
    root = resources.files(_SCENARIO_PACKAGE)
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _describe(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "union_tag_invalid":
        return f"unknown fault type: use one of {', '.join(FAULT_TYPES)}"
    if kind == "union_tag_not_found":
        return f"every fault needs type: one of {', '.join(FAULT_TYPES)}"
    return validation_message(dict(err), "unknown key (see docs/simulator.md for the keys of each fault type)")


def scenario_from_data(data: object, source: str = "<scenario>", text: str = "", default_name: str = "") -> Scenario:
    """Validate parsed YAML. Raises ScenarioError naming ``source`` and each bad key."""
    lines = yaml_line_map(text) if text else {}
    if not isinstance(data, dict):
        raise ScenarioError(source, [ConfigProblem("", "a scenario is a mapping with faults: (and name:, loop: ...)")])
    if default_name and "name" not in data:
        data = {**data, "name": default_name}
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems: list[ConfigProblem] = []
        for err in exc.errors():
            raw = [str(p) for p in err.get("loc", ())]
            # pydantic puts the union tag into the path (faults.0.errors.rate): drop it.
            if len(raw) >= 3 and raw[0] == "faults" and raw[2] in FAULT_TYPES:
                del raw[2]
            loc = pretty_loc(tuple(raw))
            problems.append(ConfigProblem(".".join(loc), _describe(err), line_of(lines, loc)))
        raise ScenarioError(source, problems) from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name (``outage``) or a YAML file by path."""
    text_name = str(name_or_path)
    path = Path(text_name).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in text_name:
        source = str(path)
        if not path.is_file():
            raise ScenarioError(source, [ConfigProblem("", "file not found")])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(source, [ConfigProblem("", f"cannot read the file: {exc}")]) from None
        default_name = path.stem
    else:
        names = builtin_scenarios()
        if text_name not in names:
            raise ScenarioError(
                text_name, [ConfigProblem("", f"no built-in scenario {text_name!r}: use one of {', '.join(names)}")]
            )
        source = f"<built-in scenario {text_name}>"
        text = resources.files(_SCENARIO_PACKAGE).joinpath(f"{text_name}.yaml").read_text(encoding="utf-8")
        default_name = text_name
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(source, [yaml_problem(exc)]) from None
    return scenario_from_data(data, source, text, default_name)
