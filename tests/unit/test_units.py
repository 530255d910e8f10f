import pytest

from cryptomon_tui.kernel.units import format_duration, parse_duration


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
