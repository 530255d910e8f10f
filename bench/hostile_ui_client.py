"""The UI face of the hostile-values soak (``bench/bench_hostile.py``): the real Textual app, attached to the
running daemon over its control socket, headless at 80x24, open for the whole run.

Run as its own process (``python -m bench.hostile_ui_client --socket S --out F``), as ``cryptomon attach`` would
run beside a daemon: the bench's process holds the hostile server's thread, and a UI in it would compete with
that thread for the GIL. Every ``--check-every`` seconds it checks what a user would see and writes one JSON line
per check to ``--out``:

- the app is running and has no exception (an unhandled one ends a Textual app with its crash screen);
- the snapshot seq it shows advanced since the previous check, that snapshot is recent (its ``ts`` at most
  ``MAX_AGE_S`` old) and is not the engine's fallback (no ``error``);
- the exchanges table has one row per exchange of the shown snapshot, the healthy ones among them, and every
  hostile exchange's status cell says, as text, what the snapshot says (``present.status_cell``); the rendered
  80x24 screen has the "N exch" status line and, with a hostile row selected, a line with its name and status;
- every ``--screens-every`` seconds it opens that hostile exchange's details screen (enter) and the Streams view
  (``w``), waits until each has drawn, checks the rendered screen and goes back.

It stops after ``--duration`` seconds or when ``--stop-file`` appears, and writes a last line ``{"final": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

MAX_AGE_S = 5.0  # the UI pulls at 1 Hz; older than this is a UI (or daemon) not keeping up
WAIT_S = 10.0  # for a screen to open or draw; generous: the machine is shared
HEALTHY_NAMES = ("canary", "steady")
HOSTILE_PREFIX = "hostile-"


def screen_text(app: Any) -> list[str]:
    """The rendered lines of the current screen, as the terminal would show them."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


async def _wait(pilot: Any, predicate: Callable[[], bool], limit_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await pilot.pause(0.1)
    return True


class Checker:
    def __init__(self, app: Any, pilot: Any, out: TextIO, started: float, hostile_count: int) -> None:
        self.app = app
        self.pilot = pilot
        self.out = out
        self.started = started
        self.hostile_count = hostile_count
        self.last_seq: Any = None
        self.turn = 0
        self.summary: dict[str, Any] = {"checks": 0, "failures": 0, "details_opened": 0, "streams_opened": 0,
                                        "max_age_s": 0.0, "hostile_status_words": {}}

    def emit(self, kind: str, problems: list[str], **extra: Any) -> None:
        self.summary["checks"] += 1
        self.summary["failures"] += bool(problems)
        row = {"t": round(time.monotonic() - self.started, 1), "kind": kind, "ok": not problems,
               "problems": problems, **extra}
        self.out.write(json.dumps(row) + "\n")
        self.out.flush()

    def alive_problems(self) -> list[str]:
        app = self.app
        problems = []
        if getattr(app, "_exception", None) is not None:
            problems.append(f"app exception: {app._exception!r}"[:300])
        if not app.is_running or app.return_code not in (None, 0):
            problems.append(f"app not running (return code {app.return_code})")
        return problems

    async def dashboard(self) -> None:
        from cryptomon_tui.kernel.snapshot import Snapshot
        from cryptomon_tui.ui import present
        from cryptomon_tui.ui.dashboard import DashboardScreen
        from cryptomon_tui.ui.widgets import KeyedTable

        problems = self.alive_problems()
        if problems:
            self.emit("dashboard", problems)
            return
        if not isinstance(self.app.screen, DashboardScreen):
            self.emit("dashboard", [f"dashboard expected, {type(self.app.screen).__name__} shown"])
            return
        screen = self.app.screen
        snap = screen.snapshot or Snapshot()
        seq = screen.shown_seq
        if seq is None or seq == self.last_seq:
            problems.append(f"shown snapshot seq did not advance ({self.last_seq} -> {seq})")
        self.last_seq = seq
        ts = present.parse_ts(snap.ts)
        age = None if ts is None else time.time() - ts
        if age is None or age > MAX_AGE_S:
            problems.append(f"shown snapshot is {age if age is None else round(age, 1)} s old")
        else:
            self.summary["max_age_s"] = max(self.summary["max_age_s"], round(age, 2))
        if snap.error:
            problems.append(f"the shown snapshot is the fallback: {snap.error}"[:300])
        exchanges = snap.exchanges
        table = screen.query_one("#exchanges", KeyedTable)
        if sorted(table.keys) != sorted(exchanges):
            problems.append(f"table rows {sorted(table.keys)} != snapshot exchanges {sorted(exchanges)}")
        missing = [n for n in HEALTHY_NAMES if n not in table.keys]
        if missing:
            problems.append(f"healthy rows missing: {missing}")
        hostile = sorted(n for n in table.keys if n.startswith(HOSTILE_PREFIX))
        if len(hostile) != self.hostile_count:
            problems.append(f"{len(hostile)} hostile rows, expected {self.hostile_count}")
        words: dict[str, int] = self.summary["hostile_status_words"]
        for name in hostile:
            ex = exchanges.get(name)
            want = present.status_cell(ex.status if ex is not None else "").text
            shown = table.shown_text(name, "status")
            words[shown] = words.get(shown, 0) + 1
            if shown != want or not shown.isprintable():
                problems.append(f"{name}: status cell {shown!r}, snapshot says {want!r}")
        target = hostile[self.turn % len(hostile)] if hostile else None
        self.turn += 1
        if target is not None:
            table.focus()
            table.select_key(target)
            await self.pilot.pause(0.2)
            lines = screen_text(self.app)
            # a newer snapshot may have been drawn during the pause: the screen is checked against that one, and
            # a target that a reload (a new generation) took away from it is not looked for
            now_exchanges = (screen.snapshot or Snapshot()).exchanges
            if not any(f"{len(now_exchanges)} exch" in line for line in lines):
                problems.append(f"no '{len(now_exchanges)} exch' status line on screen")
            if target in now_exchanges:
                name_shown = present.clean_text(target, 15)
                status = table.shown_text(target, "status")

                def shown() -> bool:
                    return bool(status) and any(name_shown in line and status in line for line in lines)

                if not shown():  # a redraw may be pending: what a user sees within a second counts
                    table.select_key(target)
                    await self.pilot.pause(1.0)
                    lines = screen_text(self.app)
                    status = table.shown_text(target, "status")
                if not shown():
                    rows = [line.strip()[:40] for line in lines if HOSTILE_PREFIX in line or "canary" in line]
                    problems.append(f"{target} selected but no screen line shows it with {status!r}; "
                                    f"cursor on {table.selected_key()!r}; rows on screen: {rows}")
            else:
                target = None
        self.emit("dashboard", problems, seq=seq, age_s=None if age is None else round(age, 2),
                  rows=len(table.keys), target=target,
                  target_status=None if target is None else table.shown_text(target, "status"))

    async def details(self) -> None:
        from cryptomon_tui.ui.dashboard import DashboardScreen
        from cryptomon_tui.ui.details import ExchangeDetails
        from cryptomon_tui.ui.widgets import KeyedTable

        problems = self.alive_problems()
        screen = self.app.screen
        if problems or not isinstance(screen, DashboardScreen):
            self.emit("details", problems or [f"dashboard expected, {type(screen).__name__} shown"])
            return
        table = screen.query_one("#exchanges", KeyedTable)
        hostile = sorted(n for n in table.keys if n.startswith(HOSTILE_PREFIX))
        if not hostile:
            self.emit("details", ["no hostile row to open"])
            return
        target = hostile[self.turn % len(hostile)]
        table.focus()
        table.select_key(target)
        await self.pilot.press("enter")
        opened = await _wait(self.pilot, lambda: isinstance(self.app.screen, ExchangeDetails))
        if not opened:
            problems.append(f"enter on {target} did not open its details ({type(self.app.screen).__name__})")
        else:
            details = self.app.screen
            assert isinstance(details, ExchangeDetails)
            if not await _wait(self.pilot, lambda: details.loads >= 1):
                problems.append(f"details of {target}: history never drawn")
            await self.pilot.pause(0.2)
            lines = screen_text(self.app)
            from cryptomon_tui.ui.present import clean_text

            target = details.exchange  # the row under the cursor: a reload may have replaced the selected one
            if not any(clean_text(target) in line for line in lines[:3]):
                problems.append(f"details of {target}: its name is not in the head line")
            self.summary["details_opened"] += 1
            await self.pilot.press("escape")
            if not await _wait(self.pilot, lambda: isinstance(self.app.screen, DashboardScreen)):
                problems.append("escape did not go back to the dashboard from the details")
        problems += self.alive_problems()
        self.emit("details", problems, target=target)

    async def streams(self) -> None:
        from cryptomon_tui.ui.dashboard import DashboardScreen
        from cryptomon_tui.ui.streams import StreamsScreen

        problems = self.alive_problems()
        if problems or not isinstance(self.app.screen, DashboardScreen):
            self.emit("streams", problems or [f"dashboard expected, {type(self.app.screen).__name__} shown"])
            return
        await self.pilot.press("w")
        if not await _wait(self.pilot, lambda: isinstance(self.app.screen, StreamsScreen)):
            problems.append(f"w did not open the Streams view ({type(self.app.screen).__name__})")
        else:
            await self.pilot.pause(1.2)  # one refresh_rows tick
            lines = screen_text(self.app)
            if not any("WebSocket streams" in line for line in lines):
                problems.append("Streams view: no title line on screen")
            self.summary["streams_opened"] += 1
            await self.pilot.press("escape")
            if not await _wait(self.pilot, lambda: isinstance(self.app.screen, DashboardScreen)):
                problems.append("escape did not go back to the dashboard from the Streams view")
        problems += self.alive_problems()
        self.emit("streams", problems)


async def run(args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    from cryptomon_tui.daemon.address import DaemonAddress
    from cryptomon_tui.daemon.client import DaemonClient
    from cryptomon_tui.ui.app import CryptomonApp
    from cryptomon_tui.ui.state import UiState

    client = DaemonClient(DaemonAddress(socket_path=Path(args.socket)), client_name="bench-hostile-ui")
    app = CryptomonApp(client, state=UiState(), persist_state=False, watch_signals=False, actor="bench@hostile")
    started = time.monotonic()
    stop = Path(args.stop_file) if args.stop_file else None
    checker: Checker | None = None
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            checker = Checker(app, pilot, out, started, args.hostile_count)
            if not await _wait(pilot, lambda: app.dashboard.shown_seq is not None, 30.0):
                checker.emit("start", ["no snapshot shown within 30 s of start", *checker.alive_problems()])
            next_check = time.monotonic() + args.check_every
            next_screens = time.monotonic() + args.screens_every / 2
            while time.monotonic() - started < args.duration and not (stop is not None and stop.exists()):
                await pilot.pause(0.25)
                now = time.monotonic()
                if now >= next_check:
                    await checker.dashboard()
                    next_check = now + args.check_every
                if now >= next_screens:
                    await checker.details()
                    await checker.streams()
                    next_screens = now + args.screens_every
                if not app.is_running:
                    break
            if checker.alive_problems():
                checker.emit("end", checker.alive_problems())
    except Exception as exc:  # run_test re-raises what crashed the app
        if checker is None:
            checker = Checker(app, None, out, started, args.hostile_count)
        checker.emit("crash", [f"{type(exc).__name__}: {exc}"[:500]])
    assert checker is not None
    return checker.summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hostile_ui_client")
    parser.add_argument("--socket", required=True, help="the daemon's control socket")
    parser.add_argument("--out", required=True, help="JSON lines, one per check")
    parser.add_argument("--duration", type=float, default=900.0)
    parser.add_argument("--stop-file", default="", help="stop when this file exists")
    parser.add_argument("--check-every", type=float, default=5.0)
    parser.add_argument("--screens-every", type=float, default=60.0)
    parser.add_argument("--hostile-count", type=int, default=5)
    args = parser.parse_args(argv)
    with open(args.out, "a") as out:
        summary = asyncio.run(run(args, out))
        out.write(json.dumps({"final": summary}) + "\n")
    return 0 if summary["failures"] == 0 and summary["checks"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
