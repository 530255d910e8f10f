"""The incident contracts' typed edges: ``IncidentChanges`` names exactly the fields ``with_changes`` can
replace, and every JSON shape the model produces is JSON (it goes over the control API and into files)."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import get_type_hints

from cryptomon_tui.incidents.model import (
    EventType,
    Incident,
    IncidentChanges,
    IncidentEvent,
    IncidentState,
    MaintenanceWindow,
    Matcher,
    Silence,
    TimelineEntry,
)
from cryptomon_tui.kernel.severity import Severity


def _incident() -> Incident:
    return Incident(
        id="inc-1", fingerprint="fp", rule="error_rate", severity=Severity.ERROR, exchange="okx", probe="ping",
        state=IncidentState.FIRING, summary="5xx", started_at=1_700_000_000.0, updated_at=1_700_000_010.0,
        labels={"region": "eu"}, peak={"error_rate": 0.8}, counts={"http_5xx": 3}, evidence=("latency",),
        timeline=(TimelineEntry(1_700_000_000.0, "opened", "5xx", {"rule": "error_rate", "n": [1, 2]}),),
    )  # fmt: skip


def test_incident_changes_names_every_field_with_its_type() -> None:
    changes = get_type_hints(IncidentChanges)
    dataclass_fields = get_type_hints(Incident)
    assert set(changes) == {f.name for f in fields(Incident)}
    assert changes == {name: dataclass_fields[name] for name in changes}


def test_with_changes_replaces_only_what_it_is_given() -> None:
    inc = _incident()
    changed = inc.with_changes(state=IncidentState.RESOLVED, resolved_at=1_700_000_100.0)
    assert (changed.state, changed.resolved_at) == (IncidentState.RESOLVED, 1_700_000_100.0)
    assert changed.with_changes(state=inc.state, resolved_at=None) == inc


def test_json_shapes_survive_a_json_round_trip() -> None:
    inc = _incident()
    silence = Silence("sil-1", (Matcher("exchange", "okx"),), 1_700_000_000.0, None, "ann", "deploy", 1_700_000_000.0)
    window = MaintenanceWindow("mw-1", None, 1_700_000_000.0, 1_700_003_600.0, recurrence="weekly")
    event = IncidentEvent(1_700_000_010.0, EventType.OPENED, inc, actor="ann", detail={"peak": {"error_rate": 0.8}})
    for shape in (inc.to_dict(), silence.to_dict(), window.to_dict(), event.to_json_dict(), inc.timeline[0].to_dict()):
        assert json.loads(json.dumps(shape)) == shape
    assert inc.to_dict()["labels"] == {"region": "eu"}
    assert event.to_json_dict()["detail"] == {"peak": {"error_rate": 0.8}}
