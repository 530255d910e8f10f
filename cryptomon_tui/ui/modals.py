"""Modal screens: acknowledge, silence, analysis/summary results, silences list, confirm, quit, help.

Every text that came from an exchange, the engine or an LLM is shown through ``Content`` (never
parsed as markup). Every modal closes with ``esc`` and is fully usable from the keyboard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, Label, RadioButton, RadioSet, Static

from cryptomon_tui.kernel.snapshot import IncidentView, SilenceView
from cryptomon_tui.kernel.units import parse_duration
from cryptomon_tui.ui.present import clean_text, parse_ts, silence_row
from cryptomon_tui.ui.widgets import cell_content

SILENCE_PRESETS: tuple[tuple[str, float | None], ...] = (
    ("15m", 900.0),
    ("1h", 3600.0),
    ("4h", 14400.0),
    ("until resolved", None),
)


def _lines_content(lines: Sequence[tuple[str, str]]) -> Content:
    width = max((len(label) for label, _ in lines), default=0)
    parts: list[Content] = []
    for i, (label, value) in enumerate(lines):
        if i:
            parts.append(Content("\n"))
        parts.append(Content.styled(f"{label:<{width}}  ", "$dim-text bold"))
        parts.append(Content(value))
    return Content.assemble(*parts)


class DialogBox(VerticalScroll, can_focus=False):
    """A dialog's frame: scrolls when it does not fit (80x24), never takes focus from its fields
    (focusing a field scrolls it into view)."""


_R = TypeVar("_R")


class _Modal(ModalScreen[_R | None]):
    """A dialog whose result is ``_R``, or None when closed with escape."""

    BINDINGS = [Binding("escape", "cancel", "Close", id="modal.close")]

    def action_cancel(self) -> None:
        self.dismiss(None)


class AckModal(_Modal[str]):
    """Acknowledge with an optional note; returns the note ("" for none) or None when cancelled."""

    def __init__(self, incident: IncidentView) -> None:
        super().__init__()
        self.incident = incident

    def compose(self) -> ComposeResult:
        with DialogBox(id="dialog", classes="dialog"):
            yield Label(Content("Acknowledge incident"), classes="dialog-title")
            yield Static(Content(clean_text(f"{self.incident.id}: {self.incident.summary}", 200)))
            yield Input(placeholder="note (optional), enter to acknowledge", id="ack-note")
            with Horizontal(classes="buttons"):
                yield Button("Acknowledge", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#ack-note", Input).cursor_blink = False

    @on(Input.Submitted, "#ack-note")
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        self.dismiss(self.query_one("#ack-note", Input).value.strip())

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class SilenceRequest:
    scope: str
    duration_s: float | None
    comment: str


class SilenceModal(_Modal["SilenceRequest"]):
    """Scope (incident / exchange / rule), a duration preset or a custom one, and a required comment."""

    def __init__(self, title: str, scopes: Sequence[str], default_scope: str) -> None:
        super().__init__()
        self.title_text = title
        self.scopes = list(scopes)
        self.default_scope = default_scope if default_scope in scopes else scopes[0]

    def compose(self) -> ComposeResult:
        with DialogBox(id="dialog", classes="dialog"):
            yield Label(Content("Silence"), classes="dialog-title")
            yield Static(Content(clean_text(self.title_text, 200)))
            # the comment (where the cursor starts), its error line and the buttons come first, so
            # they are on screen at 80x24 whatever else the dialog holds; scope and duration below
            yield Input(placeholder="comment (required): why?", id="comment")
            yield Static("", id="silence-error", classes="error-line")
            with Horizontal(classes="buttons"):
                yield Button("Silence", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")
            with Horizontal(classes="choices"):
                with RadioSet(id="scope"):
                    for scope in self.scopes:
                        yield RadioButton(scope, value=scope == self.default_scope, name=scope)
                with RadioSet(id="duration"):
                    for i, (label, _) in enumerate(SILENCE_PRESETS):
                        yield RadioButton(label, value=i == 1, name=label)
                    yield RadioButton("custom", name="custom")
            yield Input(placeholder="custom duration, e.g. 30m, 2h, 1d", id="custom")
            yield Label(Content("tab: scope, duration · enter: silence · esc: cancel"), classes="hint")

    def on_mount(self) -> None:
        for inp in self.query(Input):
            inp.cursor_blink = False
        self.query_one("#comment", Input).focus()

    def _chosen(self, radio_id: str) -> str | None:
        pressed = self.query_one(f"#{radio_id}", RadioSet).pressed_button
        return pressed.name if pressed is not None else None

    def _error(self, text: str, focus: str = "#comment") -> None:
        """The error goes right under the comment box (where the cursor is), in view."""
        error = self.query_one("#silence-error", Static)
        error.update(Content("⚠ " + text))
        self.query_one(focus, Input).focus()
        self.call_after_refresh(error.scroll_visible, animate=False)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        scope = self._chosen("scope") or self.default_scope
        choice = self._chosen("duration") or "1h"
        custom = self.query_one("#custom", Input).value.strip()
        duration: float | None
        if choice == "custom" or custom:
            try:
                duration = parse_duration(custom)
            except ValueError as exc:
                self._error(f"duration: {exc}", "#custom")
                return
            if duration <= 0:
                self._error("duration: must be positive", "#custom")
                return
        else:
            duration = dict(SILENCE_PRESETS).get(choice, 3600.0)
        comment = self.query_one("#comment", Input).value.strip()
        if not comment:
            self._error("a comment is required (why, and for how long)")
            return
        self.dismiss(SilenceRequest(scope, duration, comment))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class TextModal(_Modal[None]):
    """A titled block of label/value lines (analysis, summary)."""

    def __init__(self, title: str, lines: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.lines = list(lines)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog wide"):
            yield Label(Content.assemble(Content.styled(clean_text(self.title_text, 80), "bold"),
                                         Content.styled("  esc closes · ↑↓ pgup/pgdn scroll", "$dim-text")),
                        classes="dialog-title")
            yield Static(_lines_content(self.lines), id="text-body")
            yield Label(Content("end of text · esc closes"), classes="hint")

    def on_mount(self) -> None:
        self.query_one("#dialog", VerticalScroll).focus()


class ConfirmModal(_Modal[bool]):
    BINDINGS = [
        Binding("escape,n", "cancel", "No", id="confirm.no"),
        Binding("y", "yes", "Yes", id="confirm.yes"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with DialogBox(id="dialog", classes="dialog"):
            yield Static(Content(clean_text(self.question, 300)))
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="primary")
                yield Button("No (n)", id="no")

    def action_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)


@dataclass(frozen=True)
class QuitChoice:
    stop_daemon: bool
    remember: bool


class QuitModal(_Modal["QuitChoice"]):
    """Asked once when quitting a UI that started its own daemon."""

    BINDINGS = [
        Binding("escape", "cancel", "Stay", id="quit.stay"),
        Binding("k", "keep", "Keep monitoring", id="quit.keep"),
        Binding("s", "stop", "Stop daemon", id="quit.stop"),
        Binding("r", "remember", "Remember my choice", id="quit.remember"),
    ]

    def compose(self) -> ComposeResult:
        with DialogBox(id="dialog", classes="dialog"):
            yield Label(Content("Quit cryptomon"), classes="dialog-title")
            yield Static(
                Content(
                    "This window started the monitoring daemon. Keep it probing and notifying in the "
                    "background (attach again with `cryptomon attach`), or stop it?"
                )
            )
            yield Checkbox("remember my choice (r)", value=False, id="remember")
            with Horizontal(classes="buttons"):
                yield Button("Keep monitoring (k)", id="keep", variant="primary")
                yield Button("Stop daemon (s)", id="stop", variant="error")

    def action_remember(self) -> None:
        box = self.query_one("#remember", Checkbox)
        box.value = not box.value

    def _remember(self) -> bool:
        return self.query_one("#remember", Checkbox).value

    def action_keep(self) -> None:
        self.dismiss(QuitChoice(False, self._remember()))

    def action_stop(self) -> None:
        self.dismiss(QuitChoice(True, self._remember()))

    @on(Button.Pressed, "#keep")
    def _keep(self) -> None:
        self.action_keep()

    @on(Button.Pressed, "#stop")
    def _stop(self) -> None:
        self.action_stop()


SILENCE_COLUMNS = (("id", "Id", 12), ("matchers", "Matchers", 24), ("ends", "Ends in", 14),
                   ("by", "By", 14), ("comment", "Comment", 24))


class SilencesModal(_Modal[str]):
    """Active and pending silences; ``u`` removes the selected one (after a confirm)."""

    BINDINGS = [
        Binding("escape", "cancel", "Close", id="silences.close"),
        Binding("u,delete", "unsilence", "Unsilence", id="silences.unsilence"),
    ]

    def __init__(self, source: Callable[[], tuple[Sequence[SilenceView], float | None]],
                 on_unsilence: Callable[[str], None]) -> None:
        super().__init__()
        self.source = source
        self.silences: list[SilenceView] = []
        self.now: float | None = None
        self.on_unsilence = on_unsilence
        self._shown: list[tuple[str, str | None, str]] = []

    def compose(self) -> ComposeResult:
        with DialogBox(id="dialog", classes="dialog wide"):
            yield Label(Content("Silences"), id="silences-title", classes="dialog-title")
            table: DataTable[Content] = DataTable(cursor_type="row", id="silences-table")
            yield table
            yield Label(Content("u unsilence · esc close"), classes="hint")

    def on_mount(self) -> None:
        table = self.query_one("#silences-table", DataTable)
        for key, label, width in SILENCE_COLUMNS:
            table.add_column(label, width=width, key=key)
        self.reload()
        self.set_interval(1.0, self.reload, name="silences-refresh")
        table.focus()

    def reload(self) -> None:
        """Pull the latest silences (live: a silence made a moment ago shows up here too)."""
        silences, now = self.source()
        self.silences = list(silences)
        self.now = now
        rows = sorted(self.silences, key=lambda s: parse_ts(s.ends_at) or float("inf"))
        shown = [(s.id, s.ends_at, s.comment) for s in rows]
        if shown == self._shown:
            return
        self._shown = shown
        table = self.query_one("#silences-table", DataTable)
        table.clear()
        for s in rows:
            row = silence_row(s, now)
            table.add_row(*(cell_content(row[c]) for c, _, _ in SILENCE_COLUMNS), key=s.id)
        self.query_one("#silences-title", Label).update(Content(f"Silences ({len(rows)})"))

    def action_unsilence(self) -> None:
        table = self.query_one("#silences-table", DataTable)
        if table.row_count == 0:
            self.notify("no silence selected", severity="warning", markup=False)
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key is None:
            return
        silence_id = str(key)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.on_unsilence(silence_id)
                self.dismiss(silence_id)

        self.app.push_screen(ConfirmModal(f"Remove silence {silence_id}?"), confirmed)


class HelpModal(_Modal[None]):
    """Every key of the screen underneath, from the same bindings that drive the footer, then a
    legend of the words and symbols the dashboard uses."""

    def __init__(self, rows: Sequence[tuple[str, str, str]], legend: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__()
        self.rows = list(rows)
        self.legend = list(legend)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog wide"):
            yield Label(Content.assemble(Content.styled("Keys", "bold"),
                                         Content.styled("  esc closes · ↑↓ pgup/pgdn scroll", "$dim-text")),
                        classes="dialog-title")
            yield Static(self._keys(), id="help-keys")
            yield Label(Content("Legend"), classes="dialog-title")
            yield Static(_lines_content(self.legend), id="help-legend")
            yield Label(
                Content("ctrl+p palette · remap keys: ui.keymap (binding id → keys) · esc closes"),
                classes="hint",
            )

    def _keys(self) -> Content:
        width = max((len(k) for k, _, _ in self.rows), default=0)
        parts: list[Content] = []
        for i, (key, desc, ident) in enumerate(self.rows):
            if i:
                parts.append(Content("\n"))
            parts.append(Content.styled(f"{key:<{width}}  ", "$accent bold"))
            parts.append(Content(desc))
            if ident:
                parts.append(Content.styled(f"  [{ident}]", "$dim-text"))
        return Content.assemble(*parts)

    def on_mount(self) -> None:
        self.query_one("#dialog", VerticalScroll).focus()
