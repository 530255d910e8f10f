"""Cumulative totals behind the /metrics counters and histogram: exact counts, Prometheus bucket shape."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.metrics.totals import DURATION_BUCKETS_S, Totals

results = st.lists(
    st.tuples(st.sampled_from(["ping", "book"]), st.sampled_from(list(Outcome)),
              st.one_of(st.none(), st.floats(min_value=0.0, max_value=60_000.0))),
    max_size=200,
)


@given(results)
def test_counts_are_exact_and_buckets_cumulative(items: list[tuple[str, Outcome, float | None]]) -> None:
    totals = Totals()
    for probe, outcome, latency in items:
        totals.record("okx", probe, outcome.value, latency)
    by_outcome = totals.probe_outcomes()
    for probe in ("ping", "book"):
        for outcome in Outcome:
            expected = sum(1 for p, o, _ in items if p == probe and o is outcome)
            assert by_outcome.get(("okx", probe, outcome.value), 0) == expected
        latencies = [lat for p, _, lat in items if p == probe and lat is not None]
        durations = totals.probe_durations().get(("okx", probe))
        if not latencies:
            assert durations is None
            continue
        assert durations is not None and durations.count == len(latencies)
        assert abs(durations.sum_s - sum(latencies) / 1000) < 1e-6
        cumulative = durations.cumulative()
        assert [le for le, _ in cumulative] == [repr(b) for b in DURATION_BUCKETS_S] + ["+Inf"]
        counts = [n for _, n in cumulative]
        assert counts == sorted(counts) and counts[-1] == len(latencies)
        for bound, n in zip(DURATION_BUCKETS_S, counts, strict=False):
            assert n == sum(1 for lat in latencies if lat <= bound * 1000)  # le is inclusive, as in Prometheus


def test_buckets_resolve_one_millisecond_to_ten_seconds() -> None:
    assert DURATION_BUCKETS_S[0] == 0.001 and DURATION_BUCKETS_S[-1] == 10.0
    ratios = [b / a for a, b in itertools.pairwise(DURATION_BUCKETS_S)]
    assert max(ratios) <= 2.5  # no bucket more than 2.5 times wider than the one below
