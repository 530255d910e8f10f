"""Untrusted text (exchange errors, incident summaries, notes, LLM output) with markup-like tags,
brackets and control characters is shown verbatim and never crashes the app, in every place."""

from __future__ import annotations

from typing import Any

from textual.widgets import Log, Static

from cryptomon_tui.incidents.model import EventType, IncidentState, TimelineEntry
from cryptomon_tui.ui.details import ExchangeDetails, IncidentDetails
from cryptomon_tui.ui.modals import SilencesModal, TextModal
from cryptomon_tui.ui.present import clean_text
from cryptomon_tui.ui.widgets import KeyedTable
from tests.ui.harness import HOSTILE, make_app, served_fake, wait_for

VISIBLE = clean_text(HOSTILE)


def _text(widget: Static) -> str:
    return str(widget.content)


async def test_hostile_text_everywhere() -> None:
    async with served_fake() as served:
        engine = served.engine
        engine.fail_exchange("okx")
        engine.set_probe("okx", "book", last_error_code="[b]-1003[/b]", last_error_message=HOSTILE)
        inc = engine.open_incident(exchange="okx", probe="book", summary=HOSTILE)
        engine.incidents[inc.id] = inc.with_changes(
            last_error=HOSTILE,
            timeline=(TimelineEntry(engine.clock.now(), "note", HOSTILE, {"by": HOSTILE}),
                      TimelineEntry(engine.clock.now(), "notified", "sent", {"channel": "[red]ops"})),
        )

        async def hostile_analysis(incident_id: str, force: bool = False, offline: bool = False) -> dict[str, Any]:
            return {"analysis": {"root_cause": HOSTILE, "severity": "error", "recommended_action": HOSTILE,
                                 "estimated_recovery": "[/]", "confidence": 0.5, "source": "[model]",
                                 "cost_usd": "0.001", "evidence": [HOSTILE]}, "cached": False}

        async def hostile_ack(incident_id: str, by: str, note: str | None) -> dict[str, Any]:
            from cryptomon_tui.engine.api import CommandError

            raise CommandError(HOSTILE)

        engine.analyze = hostile_analysis
        engine.ack = hostile_ack
        engine.silences["sil-x"] = __import__("cryptomon_tui.incidents.model", fromlist=["Silence"]).Silence(
            id="sil-x", matchers=(), starts_at=0, ends_at=None, created_by=HOSTILE, comment=HOSTILE, created_at=0)
        engine.changed()

        app = make_app(served.address)
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            screen = app.dashboard
            incidents = screen.query_one("#incidents", KeyedTable)
            await wait_for(pilot, lambda: inc.id in incidents.keys)
            errors = screen.query_one("#errors", KeyedTable)
            assert errors.shown_text("okx/book", "message") == VISIBLE
            assert incidents.shown_text(inc.id, "summary") == VISIBLE
            assert "[/api/v3/time]" in VISIBLE and "\\x1b" in VISIBLE and "\\u202e" in VISIBLE
            # an event with hostile text: event log + toast
            engine.emit(EventType.OPENED, engine.incidents[inc.id].with_changes(severity=inc.severity))
            engine.emit(EventType.NOTIFICATION_FAILED, engine.incidents[inc.id], reason=HOSTILE)
            await wait_for(pilot, lambda: screen.query_one("#events", Log).line_count >= 2)
            assert any("[/api/v3/time]" in line for line in screen.query_one("#events", Log).lines)
            await pilot.pause()
            app.export_screenshot()  # a full render of table cells, toasts and the log
            incidents.focus()
            incidents.select_key(inc.id)
            # analysis modal with hostile LLM output
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, TextModal))
            body = _text(app.screen.query_one("#text-body", Static))
            assert VISIBLE in body and "[model]" in body
            app.export_screenshot()
            await pilot.press("escape")
            # a refused command whose message is hostile: toast, no crash
            await pilot.press("a")
            await pilot.pause()
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            app.export_screenshot()
            # silences list with hostile comment/creator
            await pilot.press("S")
            await wait_for(pilot, lambda: isinstance(app.screen, SilencesModal))
            app.export_screenshot()
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen)
            # incident timeline
            incidents.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, IncidentDetails))
            await pilot.pause()
            detail = _text(app.screen.query_one("#detail-body", Static))
            assert VISIBLE in detail
            app.export_screenshot()
            await pilot.press("escape")
            # exchange details (probe table with the hostile last error)
            ex = screen.query_one("#exchanges", KeyedTable)
            ex.focus()
            ex.select_key("okx")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ExchangeDetails) and app.screen.loads > 0)
            app.export_screenshot()
            assert app.is_running
            assert engine.incidents[inc.id].state is IncidentState.FIRING
