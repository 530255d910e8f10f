"""sample_config.yaml documents every option with its default, and never drifts from the models."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from cryptomon_tui.config import config_from_data
from cryptomon_tui.config.root import Config
from cryptomon_tui.config.sample import render_sample

SAMPLE = Path(__file__).resolve().parents[2] / "sample_config.yaml"


def test_sample_is_current() -> None:
    assert SAMPLE.read_text() == render_sample(), (
        "sample_config.yaml is stale: run `python -m cryptomon_tui.config.sample > sample_config.yaml`"
    )


def test_sample_parses_to_the_defaults() -> None:
    config = config_from_data(yaml.safe_load(SAMPLE.read_text()), SAMPLE)
    assert config.model_dump() == Config().model_dump()


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    names: set[str] = set()
    if model in seen:
        return names
    seen.add(model)
    for attr, info in model.model_fields.items():
        names.add(info.alias or attr)
        for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _field_names(inner, seen)
    return names


def test_every_option_is_mentioned() -> None:
    text = SAMPLE.read_text()
    missing = sorted(n for n in _field_names(Config, set()) if f"{n}:" not in text)
    assert not missing, f"options not documented in sample_config.yaml: {missing}"
