"""Issue 13 acceptance, bounded: the hostile-values soak of ``bench/bench_hostile.py`` for 60 s against the real
daemon (the 15-minute run is ``make bench-hostile``; figures in bench/RESULTS.md). Snapshot, /metrics, /healthz
and ``cryptomon status`` never fail while hostile targets answer with every value that once broke the daemon,
and the healthy targets' probes stay on their 1 s schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_hostile import run_soak

pytestmark = pytest.mark.slow


@pytest.mark.timeout(150)
def test_hostile_values_for_a_minute_leave_every_face_working(tmp_path: Path) -> None:
    result = run_soak(60.0, generation_s=10.0, workdir=tmp_path)
    assert result.hostile_answers > 40, result
    assert result.generations >= 6
    assert result.daemon_alive
    assert not result.snapshot_failures and not result.metrics_failures and not result.healthz_failures, result
    assert result.status_runs >= 5 and not result.status_failures, result.status_failures
    assert not result.errors_in_log, result.errors_in_log
    for name, gap in result.healthy_max_gap_s.items():
        assert result.healthy_probes[name] >= 40, result.healthy_probes
        assert gap <= 2.0, (name, gap)
