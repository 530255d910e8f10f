"""NAB dev benchmark (``make bench-nab``): cryptomon's default detection on 28 labelled NAB series.

Runs the shared replay runner (``../shared/bench/nab-dev/run.py``: one NAB row = one probe through
``cryptomon backtest``, 10 s apart) with this checkout's cryptomon and the daemon's default
configuration, prints its report and, with ``--record``, appends the three profile scores with the
command and date to bench/RESULTS.md. The target (issue 14): >= 60 normalised on the standard
profile with reward_low_FP >= 45; ``--strict`` exits 1 when it is missed. Usage::

    python -m bench.bench_nab [--nab-dev DIR] [--jobs 2] [--only realTweets/] [--record] [--strict]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
TARGET_STANDARD = 60.0
TARGET_LOW_FP = 45.0


def _default_nab_dev() -> Path:
    for candidate in (ROOT.parent / "shared" / "bench" / "nab-dev", Path("/work/shared/bench/nab-dev")):
        if (candidate / "run.py").is_file():
            return candidate
    return ROOT.parent / "shared" / "bench" / "nab-dev"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_nab", description=__doc__.split("\n")[0])
    parser.add_argument("--nab-dev", type=Path, default=None, help="nab-dev folder (../shared/bench/nab-dev)")
    parser.add_argument("--jobs", type=int, default=2, help="backtests in parallel (default 2)")
    parser.add_argument("--only", action="append", default=None, help="series path prefix (repeatable)")
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    nab_dev = args.nab_dev or _default_nab_dev()
    runner = nab_dev / "run.py"
    if not runner.is_file():
        print(f"bench_nab: no runner at {runner} (pass --nab-dev)", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory(prefix="bench-nab-") as work:
        cmd = [sys.executable, str(runner), "--cryptomon", f"{sys.executable} -m cryptomon_tui",
               "--jobs", str(args.jobs), "--out", work, "--quiet"]
        for prefix in args.only or []:
            cmd += ["--only", prefix]
        started = _dt.datetime.now(_dt.UTC)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        report = done.stdout
        score_path = Path(work) / "score.json"
        scores = json.loads(score_path.read_text()) if score_path.is_file() else {}
    print(report, end="")
    if done.returncode != 0 or not scores:
        print(done.stderr[-2000:], file=sys.stderr)
        return done.returncode or 2
    norm = {p: _normalized(scores, p) for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")}
    last = next((line for line in report.splitlines() if line.startswith("nab-dev normalized=")), "")
    met = norm["standard"] >= TARGET_STANDARD and norm["reward_low_FP_rate"] >= TARGET_LOW_FP
    summary = (f"standard {norm['standard']:.2f}, reward_low_FP {norm['reward_low_FP_rate']:.2f}, "
               f"reward_low_FN {norm['reward_low_FN_rate']:.2f} ({last.split(' ', 2)[-1] if last else ''}); target "
               f">= {TARGET_STANDARD:g} / >= {TARGET_LOW_FP:g}: {'met' if met else 'MISSED'}")
    print(summary)
    if args.record:
        stamp = started.strftime("%Y-%m-%d %H:%M UTC")
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
        only = "".join(f" --only {p}" for p in args.only or [])
        with RESULTS_MD.open("a", encoding="utf-8") as f:
            f.write(f"\n### bench-nab, {stamp} (commit {commit})\n\nCommand: `make bench-nab` "
                    f"(`python -m bench.bench_nab --jobs {args.jobs}{only}`), default configuration, shared 2-core "
                    f"machine.\n\n{summary}\n")
    return 1 if args.strict and not met else 0


def _normalized(scores: dict[str, object], profile: str) -> float:
    """The corpus-wide normalised score of one profile from run.py's score.json."""
    data = scores.get(profile)
    overall = data.get("overall") if isinstance(data, dict) else None
    value = overall.get("normalized") if isinstance(overall, dict) else None
    return float(value) if isinstance(value, int | float) else float("nan")


if __name__ == "__main__":
    sys.exit(main())
