"""Issue 13 items 1, 4 and 9: configuration is untrusted input. YAML bombs, deep nesting, huge files and
duplicate keys are refused with a ConfigError (exit 2 in the CLI), and every field of every section, fed
inf / nan / huge / negative / unicode values, either loads finite and bounded or is refused naming its key."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cryptomon_tui.config import ConfigError, config_from_data, load_config
from cryptomon_tui.config.loader import config_file_warnings
from cryptomon_tui.config.root import Config
from cryptomon_tui.config.safe_yaml import MAX_BYTES, MAX_DEPTH, load_limited

LOL = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)[0]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (LOL, "aliases are expanded"),
        ("x: " + "[" * 20_000 + "]" * 20_000 + "\n", f"deeper than {MAX_DEPTH}"),
        ("".join("  " * i + f"k{i}:\n" for i in range(200)), f"deeper than {MAX_DEPTH}"),
        ("exchanges:\n  binance:\n    interval: 5s\n  binance:\n    interval: 1s\n", "duplicate key 'binance'"),
        ("exchanges:\n  binance:\n    interval: 5s\n    interval: 1s\n", "duplicate key 'interval'"),
        ("x: &x 1\n" + "".join(f"y{i}: *x\n" for i in range(1100)), "aliases"),
    ],
)
def test_hostile_yaml_is_refused_with_a_config_error(text: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    rendered = info.value.render()
    assert words in rendered and "refused" in rendered


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as fh:
        fh.write("# " + "x" * (MAX_BYTES + 10) + "\n")
    with pytest.raises(ConfigError, match="limit"):
        load_config(path)


def test_merge_keys_and_ordinary_aliases_still_work() -> None:
    data, _ = load_limited("base: &b {interval: 5s}\nexchanges:\n  binance:\n    <<: *b\n    timeout: 2s\n")
    assert data["exchanges"]["binance"] == {"interval": "5s", "timeout": "2s"}


# -- every field, hostile values -------------------------------------------------------------------

def _leaf_paths(model: BaseModel, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Dotted paths (by alias) of every scalar field of the default config, nested sections included."""
    out: list[tuple[str, ...]] = []
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out += _leaf_paths(value, (*prefix, key))
        elif not isinstance(value, dict | list):
            out.append((*prefix, key))
    return out


DEFAULTS = Config()
PATHS = [("exchanges", "binance", k) for k in ("interval", "timeout", "budget_share", "latency_limit")] + [
    p for p in _leaf_paths(DEFAULTS) if p[0] != "exchanges"
]
HOSTILE = st.one_of(
    st.sampled_from([".inf", "-.inf", ".nan", "inf", "nan", "'1e400'", "1e308", "-1", "-1e308", "1e9", "0",
                     "'٣'", "'∞'", "'1e12s'", "'5m3'", "99999999999999999999999", "''", "'\u202e1s'"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=8).map(lambda t: yaml.safe_dump(t).strip().removesuffix("\n...")),
)


def _nest(path: tuple[str, ...], raw: str) -> str:
    lines = [("  " * i) + f"{part}:" for i, part in enumerate(path[:-1])]
    lines.append(("  " * (len(path) - 1)) + f"{path[-1]}: {raw}")
    return "\n".join(lines) + "\n"


def _numbers(model: Any) -> list[float]:
    if isinstance(model, BaseModel):
        return [n for name in type(model).model_fields for n in _numbers(getattr(model, name))]
    if isinstance(model, dict):
        return [n for v in model.values() for n in _numbers(v)]
    if isinstance(model, list | tuple):
        return [n for v in model for n in _numbers(v)]
    if isinstance(model, float | int) and not isinstance(model, bool):
        return [float(model)]
    return []


@settings(derandomize=True, database=None, max_examples=400, deadline=None)
@given(path=st.sampled_from(PATHS), raw=HOSTILE)
def test_every_field_is_finite_and_bounded_or_refused_naming_its_key(path: tuple[str, ...], raw: str) -> None:
    text = _nest(path, raw)
    try:
        data, _ = load_limited(text)
    except yaml.YAMLError:
        return  # the value is not YAML at all (a stray control character): refused like any syntax error
    try:
        config = config_from_data(data, "fuzz.yaml", text)
    except ConfigError as exc:
        assert exc.problems
        dotted = ".".join(path)
        # the problem names the key, or a section-level rule names its section and the key in its message
        assert any(p.key.startswith(".".join(path[:2])) or (dotted.startswith(p.key) and path[-1] in p.message)
                   for p in exc.problems), (text, exc.problems)
        return
    assert all(math.isfinite(n) and abs(n) < 1e15 for n in _numbers(config)), text


# -- secrets in a file others can read; config show ------------------------------------------------

GENERIC = """\
exchanges:
  mybot:
    url: https://bot.example.com/health?token=abcd1234efgh5678&x=1
    headers:
      X-Custom-Auth: zzzyyyxxx123
      Accept: application/json
"""


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GENERIC, "exchanges.mybot.headers.X-Custom-Auth"),
        (GENERIC, "exchanges.mybot.url"),
        ("analysis:\n  llm:\n    api_key: sk-literal-key-123\n", "analysis.llm.api_key"),
        ("notify:\n  channels:\n    d:\n      type: discord\n      url: https://discord.com/api/webhooks/1/abc\n",
         "notify.channels.d.url"),
    ],
)
def test_a_readable_file_with_any_literal_secret_is_warned_about(text: str, key: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    os.chmod(path, 0o644)
    config, _ = load_config(path)
    warnings = config_file_warnings(path, config)
    assert len(warnings) == 1 and key in warnings[0]
    os.chmod(path, 0o600)
    assert config_file_warnings(path, config) == []


def test_env_references_are_not_warned_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOK", "abcdef123456")
    path = tmp_path / "c.yaml"
    path.write_text("exchanges:\n  mybot:\n    url: https://bot.example.com/h?token=${TOK}\n"
                    "    headers:\n      Authorization: ${TOK}\n")
    os.chmod(path, 0o644)
    config, _ = load_config(path)
    assert config_file_warnings(path, config) == []


def test_config_show_masks_custom_auth_headers_and_url_tokens(tmp_path: Path) -> None:
    config = config_from_data(yaml.safe_load(GENERIC))
    shown = yaml.safe_dump(config.model_dump(mode="json"))
    assert "zzzyyyxxx123" not in shown and "abcd1234efgh5678" not in shown
    assert "application/json" in shown and "x=1" in shown
    assert config.exchanges["mybot"].headers["X-Custom-Auth"] == "zzzyyyxxx123"  # only the display is masked


@pytest.mark.parametrize(
    "text",
    [
        "storage:\n  max_size_mb: 99999999999999999999999\n",  # found by the property test above
        f"daemon:\n  control:\n    max_clients: {10**400}\n",
        "analysis:\n  monthly_budget_usd: 1e300\n",
    ],
)
def test_absurdly_large_numbers_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="too large"):
        config_from_data(yaml.safe_load(text), "c.yaml", text)


@pytest.mark.parametrize("raw", [".inf", "-.inf", ".nan", "'1e400'", "1e308", "-1e308", "'\u221e'"])
def test_every_field_refuses_each_non_finite_or_huge_value(raw: str) -> None:
    """Not sampled: every field of every section, each value, so a new field cannot slip through."""
    accepted = []
    for path in PATHS:
        text = _nest(path, raw)
        try:
            config = config_from_data(load_limited(text)[0], "sweep.yaml", text)
        except ConfigError:
            continue
        if not all(math.isfinite(n) and abs(n) < 1e15 for n in _numbers(config)):
            accepted.append(".".join(path))
    assert accepted == []
