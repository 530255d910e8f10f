"""``cryptomon analyze INCIDENT_ID`` and ``cryptomon costs``: root-cause analysis and LLM spend from the store.

Both work on the SQLite store directly, with or without a running daemon, and share its usage ledger
and analysis history: an incident the daemon already analysed with the LLM is not paid for again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import TYPE_CHECKING

from cryptomon_tui.cli.common import add_config_arg, load_or_exit
from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import Config
from cryptomon_tui.kernel.units import format_duration, iso_utc

if TYPE_CHECKING:
    from cryptomon_tui.analysis.context import AnalysisContext
    from cryptomon_tui.analysis.model import Analysis
    from cryptomon_tui.analysis.service import AnalysisService
    from cryptomon_tui.incidents.model import Incident
    from cryptomon_tui.store import Store

EXIT_USAGE = 2
EXIT_STORE = 3
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser(
        "analyze",
        help="root-cause analysis of an incident (offline rules, or the configured LLM)",
        description="What broke, is it me or the exchange, what to do, how long it will last.",
    )
    p.add_argument("incident_id", metavar="INCIDENT_ID", help="incident id (a unique prefix is enough)")
    p.add_argument("--model", help="use this model instead of analysis.llm.model")
    p.add_argument("--offline", action="store_true", help="rule-based analysis only: no network, no cost")
    p.add_argument("--force", action="store_true", help="ask the LLM again even if this incident was analysed")
    p.add_argument("--json", action="store_true", help="print the analysis as JSON")
    add_config_arg(p)
    p.set_defaults(handler=cmd_analyze)

    p = sub.add_parser(
        "summary",
        help="smart summary of open and recent incidents (at most 3 sentences)",
        description="Asks the running daemon (its LLM when configured, unless --offline); without a daemon, "
        "the offline writer summarises the incidents in the store.",
    )
    p.add_argument("--since", metavar="DURATION", default="1h", help="also incidents resolved in this period (1h)")
    p.add_argument("--offline", action="store_true", help="rule-based summary only: no network, no cost")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_config_arg(p)
    p.set_defaults(handler=cmd_summary)

    p = sub.add_parser("costs", help="LLM spend: month to date, projection, budget, what-if per model")
    p.add_argument("--month", metavar="YYYY-MM", help="which month (default: the current one, UTC)")
    p.add_argument(
        "--roi", action="store_true",
        help="this month's tokens priced on every model: monthly/yearly difference, break-even against the seed's "
        "figures (10 M tokens/month: GPT-4.1 $80, DeepSeek V3.2 $4.20)",
    )
    p.add_argument("--json", action="store_true")
    add_config_arg(p)
    p.set_defaults(handler=cmd_costs)


def _err(message: str, code: int = 1) -> int:
    print(f"cryptomon: {message}", file=sys.stderr)
    return code


class _StoreProblem(Exception):
    pass


async def _open_store(config: Config, clock: RealClock) -> Store:
    from cryptomon_tui.store import Store

    store = Store(config.storage, clock)
    if not await store.open(background=False):
        health = store.health()
        await store.close()
        raise _StoreProblem(f"cannot open the store at {store.path}: {health.last_error}")
    return store


def _service(config: Config, store: Store, clock: RealClock) -> AnalysisService:
    from cryptomon_tui.analysis.service import AnalysisService
    from cryptomon_tui.analysis.store_backed import StoreAnalysisCache, StoreUsageLedger, context_from_store

    async def source(incident_id: str) -> AnalysisContext | None:
        return await context_from_store(store, incident_id, config, clock.now())

    cache = StoreAnalysisCache(store, clock, config.analysis.cache_ttl)
    return AnalysisService(config, StoreUsageLedger(store), clock, cache, context_source=source)


def _print_analysis(analysis: Analysis, incident: Incident, now: float) -> None:
    from cryptomon_tui.analysis.pricing import money

    where = incident.exchange or "all exchanges"
    since = format_duration(max(0.0, round((incident.resolved_at or now) - incident.started_at)))
    print(
        f"Incident    {incident.id}  {incident.rule} on {where} ({incident.severity.value}, {incident.state.value}, "
        f"{since})"
    )
    print(f"Severity    {analysis.severity.value}   confidence {analysis.confidence:.0%}   source {analysis.source}")
    print(f"Root cause  {analysis.root_cause}")
    print(f"Action      {analysis.recommended_action}")
    print(f"Recovery    {analysis.estimated_recovery}")
    if analysis.evidence:
        print("Evidence")
        for line in analysis.evidence:
            print(f"  - {line}")
    if analysis.notes:
        print("Notes")
        for line in analysis.notes:
            print(f"  - {line}")
    if analysis.raw_text:
        print("Model reply (not valid JSON)")
        print("  " + analysis.raw_text.replace("\n", "\n  "))
    if not analysis.is_offline or analysis.cost_usd:
        print(
            f"Cost        {money(analysis.cost_usd)} ({analysis.prompt_tokens:,} tokens in / "
            f"{analysis.completion_tokens:,} out), {analysis.latency_ms / 1000:.1f} s, {iso_utc(analysis.created_at)}"
        )


def cmd_analyze(args: argparse.Namespace) -> int:
    config, _ = load_or_exit(getattr(args, "config", None))
    if args.model and args.offline:
        return _err("--model and --offline exclude each other", EXIT_USAGE)
    if args.model and config.analysis.llm is None:
        return _err(
            "--model needs an LLM endpoint: set analysis.llm (base_url, model, api_key) in the config, "
            "or drop --model for the offline analysis",
            EXIT_USAGE,
        )
    clock = RealClock()
    streaming = not args.json and sys.stderr.isatty()

    def on_partial(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    async def run() -> int:
        from cryptomon_tui.analysis.service import UnknownIncident

        store = await _open_store(config, clock)
        svc = _service(config, store, clock)
        try:
            incident = await store.incident(args.incident_id)
            if incident is None:
                return _err(
                    f"no incident {args.incident_id!r} in the store (list them with `cryptomon incidents`; "
                    "an ambiguous prefix matches nothing)"
                )
            llm = config.analysis.llm
            if streaming and llm is not None and svc.llm_configured and not args.offline:
                sys.stderr.write(f"asking {args.model or llm.model} ...\n")
            try:
                analysis = await svc.analyze(
                    incident.id,
                    force=args.force,
                    offline=args.offline,
                    model=args.model,
                    on_partial=on_partial if streaming else None,
                )
            except UnknownIncident:
                return _err(f"no incident {args.incident_id!r} in the store")
            if streaming and svc.llm_configured and not args.offline:
                sys.stderr.write("\n\n")
            if args.json:
                out = analysis.to_json_dict()
                out["incident"] = incident.event_dict()
                json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
                sys.stdout.write("\n")
            else:
                _print_analysis(analysis, incident, clock.now())
            return 0
        finally:
            await svc.aclose()
            await store.close()

    try:
        return asyncio.run(run())
    except _StoreProblem as exc:
        return _err(str(exc), EXIT_STORE)


def cmd_summary(args: argparse.Namespace) -> int:
    """Through the daemon's control API when one runs (the same command the UI's ``m`` sends), else offline
    from the store. Either way the text is at most three sentences (``Summary`` enforces it)."""
    from cryptomon_tui.analysis.model import Summary
    from cryptomon_tui.analysis.pricing import money
    from cryptomon_tui.kernel.units import parse_duration

    config, _ = load_or_exit(getattr(args, "config", None))
    try:
        since_s = parse_duration(args.since)
    except ValueError as exc:
        return _err(f"--since {args.since!r}: {exc}", EXIT_USAGE)
    clock = RealClock()

    async def from_daemon() -> Summary | None:
        from cryptomon_tui.daemon.address import address_from_config
        from cryptomon_tui.daemon.client import DaemonClient, DaemonError, NoDaemonRunning

        try:
            async with DaemonClient(
                address_from_config(config), reconnect=False, client_name="cryptomon-summary"
            ) as client:
                reply = await client.summary(since_s, offline=args.offline)
        except (NoDaemonRunning, DaemonError, OSError):
            return None
        return Summary.model_validate(reply.get("summary") or {})

    async def from_store() -> Summary:
        store = await _open_store(config, clock)
        svc = _service(config, store, clock)
        try:
            now = clock.now()
            found = await store.incidents(since=now - since_s)
            open_ = [i for i in found if i.is_open]
            resolved = [i for i in found if not i.is_open and (i.resolved_at or 0.0) >= now - since_s]
            result: Summary = await svc.summarize(open_, {}, offline=True, resolved=resolved, since_s=since_s)
            return result
        finally:
            await svc.aclose()
            await store.close()

    async def run() -> int:
        summary = await from_daemon()
        where = "daemon"
        if summary is None:
            summary, where = await from_store(), "store (no daemon running: offline)"
        if args.json:
            out = summary.model_dump(mode="json")
            out["created_at"] = iso_utc(summary.created_at)
            out["from"] = where
            json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
            return 0
        print(summary.text)
        if summary.incident_ids:
            print(f"\nIncidents: {', '.join(summary.incident_ids)}")
        cost = f", {money(summary.cost_usd)}" if summary.cost_usd else ""
        print(f"({summary.source}, from the {where}{cost})")
        return 0

    try:
        return asyncio.run(run())
    except _StoreProblem as exc:
        return _err(str(exc), EXIT_STORE)


def cmd_costs(args: argparse.Namespace) -> int:
    config, _ = load_or_exit(getattr(args, "config", None))
    if args.month and not _MONTH.match(args.month):
        return _err(f"--month {args.month!r}: write YYYY-MM, e.g. 2025-03", EXIT_USAGE)
    clock = RealClock()

    async def run() -> int:
        store = await _open_store(config, clock)
        svc = _service(config, store, clock)
        try:
            report = await svc.costs(args.month)
            roi = None
            if args.roi:
                from cryptomon_tui.analysis.pricing import build_roi

                current = config.analysis.llm.model if config.analysis.llm is not None else None
                roi = build_roi(report, svc.pricing, clock.now(), current)
            if args.json:
                data = report.to_json_dict()
                if roi is not None:
                    data["roi"] = roi.to_json_dict()
                json.dump(data, sys.stdout, indent=2)
                sys.stdout.write("\n")
            else:
                print(report.render())
                if roi is not None:
                    print()
                    print(roi.render())
                if config.analysis.llm is None:
                    print("\n  (no LLM configured: analyses are offline and free; set analysis.llm to use one)")
            return 0
        finally:
            await svc.aclose()
            await store.close()

    try:
        return asyncio.run(run())
    except _StoreProblem as exc:
        return _err(str(exc), EXIT_STORE)
