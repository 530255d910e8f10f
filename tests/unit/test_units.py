import math

import pytest

from cryptomon_tui.kernel.units import format_duration, format_ms, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("20s", 20), ("5m", 300), ("1h", 3600), ("7d", 604800), ("1h30m", 5400), (2, 2.0), ("0.25", 0.25)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "abc", "5x", "-1s", True, None, "10 minutes", "5m3"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_roundtrip() -> None:
    for seconds in (0.1, 0.5, 1, 20, 90, 3600, 5400, 86400):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_format_ms_full_and_compact() -> None:
    """One millisecond formatter: full for prose (incident summaries, CLI, analysis), compact for cells."""
    assert [format_ms(v) for v in (4.254, 41.4, 999.4, 1234.5, 12_345.0)] == ["4.25ms", "41ms", "999ms", "1.23s",
                                                                                "12.35s"]
    assert [format_ms(v, compact=True) for v in (4.254, 41.4, 999.4, 1234.5, 12_345.0)] == ["4.3ms", "41ms", "999ms",
                                                                                              "1.2s", "12s"]
    for bad in (None, math.nan, math.inf, -math.inf, True, "12", [1]):
        assert format_ms(bad) == "-" and format_ms(bad, compact=True) == "-"


def test_format_duration_unknown_is_a_dash() -> None:
    for bad in (None, math.nan, math.inf):
        assert format_duration(bad, compact=True) == "-"
    assert format_duration(None) == "-" and format_duration(math.inf) == "inf"
    assert format_duration(90) == "1m30s" and format_duration(90, compact=True) == "1m30s"
    assert format_duration(7500) == "2h5m" and format_duration(7500, compact=True) == "2h05m"
