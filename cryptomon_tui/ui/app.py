"""CryptomonApp: owns the bridge, themes, keymap, the quit decision and signal handling.

The CLI (``cli/ui_cmd.py``) constructs it on a daemon client; the tests construct it the same way on a
fake client (``tests/ui/harness.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.theme import Theme

from cryptomon_tui.clock import Clock, RealClock
from cryptomon_tui.config.daemon import UiConfig
from cryptomon_tui.ui.bridge import Bridge, ClientLike
from cryptomon_tui.ui.dashboard import DashboardScreen
from cryptomon_tui.ui.modals import HelpModal, QuitChoice, QuitModal
from cryptomon_tui.ui.state import UiState
from cryptomon_tui.ui.theming import APP_VARIABLE_DEFAULTS, DEFAULT_THEME, ThemeProblem, load_themes
from cryptomon_tui.ui.widgets import KeyedTable as DashboardTable

HELP_LEGEND: tuple[tuple[str, str], ...] = (
    ("CRIT ERR WARN INFO", "severity, worst first (CRIT reversed, ERR underlined: readable without colour)"),
    ("FIRING", "open, nobody has acknowledged it"),
    ("ACK <who>", "acknowledged by <who>; still open"),
    ("SILENCED <left>", "no notifications until the silence ends (time left)"),
    ("FLAPPING", "opened and resolved repeatedly; notifications are held back"),
    ("MAINT", "inside a maintenance window (planned)"),
    ("OK DEGRADED DOWN", "exchange status: healthy / slow or some errors / not answering"),
    ("BANNED / BAN 9m47s", "the exchange banned our IP; time until the ban ends"),
    ("PAUSED", "probing stopped by `p` (resume with `p`)"),
    ("Breaker closed", "requests flow normally"),
    ("OPEN 8s / HALF-OPEN", "circuit breaker: requests held back; next trial in 8s / trial running"),
    ("▁▂▃▄▅▆▇█", "latency of each probe, oldest left; one scale for every row"),
    ("×", "a failed probe in the latency line (failure colour)"),
    ("Latency 0..50ms 30s", "latency column: bars from 0 to 50 ms (higher clips), covering the last 30 s"),
    ("█░ 42%", "share of the exchange's rate limit in use"),
    ("24h uptime █·", "per 2 h, oldest left: green no errors, amber < 5 %, red more; · not probed"),
    ("?", "unknown (no data yet)"),
    ("-", "no value (not measured)"),
    ("+N more", "incident rows out of view: scroll the incident pane"),
    ("All clear", "verdict line: no open incident"),
)

SHIPPED_THEMES = ("cryptomon-dark", "cryptomon-light", "cryptomon-high-contrast")


@dataclass
class AppResult:
    """What the CLI learns when the app exits."""

    daemon: str = "attached"  # attached | kept | stopped | stop-failed
    reason: str = "quit"  # quit | signal
    messages: list[str] = field(default_factory=list)


class ActionsProvider(Provider):
    """Palette entries for the selected things: ack/analyse/silence incidents, pause exchanges."""

    def _entries(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.app
        if not isinstance(app, CryptomonApp):
            return []
        screen = app.dashboard
        out: list[tuple[str, Callable[[], object], str]] = [
            ("Summary of all open incidents", screen.action_summary, "one analysis of everything open"),
            ("List silences", screen.action_silences, "and remove one"),
            ("Freeze / unfreeze the view", screen.action_freeze, "probing and alerting go on"),
            ("Cycle sort order", screen.action_sort, "name, status, p99, errors"),
            ("Cycle theme", app.action_cycle_theme, "shipped and user themes"),
        ]
        for inc in screen.incidents():
            ident = inc.id
            if inc.state == "resolved":
                continue

            def pick(ident: str, then: Callable[[], None]) -> Callable[[], None]:
                def run() -> None:
                    screen.query_one("#incidents").focus()
                    screen.query_one("#incidents", DashboardTable).select_key(ident)
                    then()

                return run

            summary = inc.summary[:60]
            out.append((f"Analyse {ident}", pick(ident, screen.action_analyse), summary))
            out.append((f"Acknowledge {ident}", pick(ident, screen.action_acknowledge), summary))
            out.append((f"Silence {ident}", pick(ident, screen.action_silence), summary))
        for name in sorted(screen.snapshot.exchanges if screen.snapshot is not None else ()):

            def pick_ex(name: str = name) -> None:
                table = screen.query_one("#exchanges", DashboardTable)
                table.focus()
                table.select_key(name)
                screen.action_pause()

            out.append((f"Pause/resume {name}", pick_ex, "stop or restart probing this exchange"))
        return out

    async def discover(self) -> Hits:
        for text, callback, help_text in self._entries():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


class CryptomonApp(App[AppResult]):
    TITLE = "cryptomon"
    CSS_PATH = "styles/app.tcss"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+q", "quit", "Quit", id="quit.ctrl", show=False),
        Binding("question_mark,f1", "help", "Help", id="help", key_display="?"),
        Binding("t", "cycle_theme", "Theme", id="theme", tooltip="Next theme (ctrl+p: all themes)"),
        Binding("w", "streams", "Streams", id="streams", tooltip="WebSocket streams: freshness, lag, gaps"),
    ]

    def __init__(
        self,
        client: ClientLike,
        *,
        ui_config: UiConfig | None = None,
        theme: str | None = None,
        owns_daemon: bool = False,
        clock: Clock | None = None,
        state: UiState | None = None,
        persist_state: bool = True,
        actor: str | None = None,
        watch_signals: bool = True,
    ) -> None:
        self.ui_config = ui_config or UiConfig()
        self.refresh_hz = float(self.ui_config.refresh_hz)
        self.clock: Clock = clock or RealClock()
        self.owns_daemon = owns_daemon
        self.ui_state = state if state is not None else UiState.load()
        self.persist_state = persist_state
        self.watch_signals = watch_signals
        self.bridge = Bridge(client, snapshot_hz=self.refresh_hz, actor=actor)
        super().__init__()
        self.animation_level = "none"
        self.result = AppResult()
        self.theme_problems: list[ThemeProblem] = []
        self.theme_messages: list[str] = []
        self._register_themes()
        self.theme = self._initial_theme(theme)
        self._theme_ready = False
        if self.ui_config.keymap:
            self.set_keymap(dict(self.ui_config.keymap))
        self._quitting = False

    # ------------------------------------------------------------------ themes
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(APP_VARIABLE_DEFAULTS)

    def _register_themes(self) -> None:
        themes, problems = load_themes()
        for t in themes:
            self.register_theme(t)
        self.theme_problems = problems

    def _initial_theme(self, requested: str | None) -> str:
        available = set(self.available_themes)
        for source, name in (("--theme", requested), ("saved choice", self.ui_state.theme),
                             ("ui.theme", self.ui_config.theme)):
            if not name:
                continue
            if name in available:
                return name
            close = difflib.get_close_matches(name, sorted(available), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            self.theme_messages.append(f"{source}: unknown theme {name!r}{hint}; using another")
        return DEFAULT_THEME if DEFAULT_THEME in available else "textual-dark"

    def themes_to_cycle(self) -> list[str]:
        names = [n for n in SHIPPED_THEMES if n in self.available_themes]
        extra = sorted(n for n in self.available_themes if n.startswith("cryptomon") or n in self._user_theme_names)
        return names + [n for n in extra if n not in names] + ["ansi-dark", "ansi-light"]

    @property
    def _user_theme_names(self) -> set[str]:
        return {t for t in self.available_themes if t not in _BUILTIN_THEMES}

    def action_cycle_theme(self) -> None:
        names = [n for n in self.themes_to_cycle() if n in self.available_themes]
        idx = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(idx + 1) % len(names)]
        self.notify(f"theme: {self.theme} (ctrl+p → theme for all)", markup=False)

    def _theme_changed(self, _theme: Theme) -> None:
        if not self._theme_ready or not self.persist_state:
            return
        if self.ui_state.theme != self.theme:
            self.ui_state.theme = self.theme
            self.ui_state.save()

    # ------------------------------------------------------------------ lifecycle
    def get_default_screen(self) -> Screen[None]:
        return DashboardScreen()

    @property
    def dashboard(self) -> DashboardScreen:
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        raise LookupError("no dashboard")

    async def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self._theme_ready = True
        for problem in self.theme_problems:
            self.notify(f"theme file skipped: {problem.render()}", severity="warning", markup=False, timeout=10)
        for message in self.theme_messages:
            self.notify(message, severity="warning", markup=False, timeout=10)
        if self.watch_signals and not self.is_headless:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGHUP, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self._on_signal)
        self.run_worker(self._connect(), name="connect", group="bridge", exit_on_error=False)

    async def _connect(self) -> None:
        try:
            await self.bridge.start()
        except Exception as exc:
            self.notify(f"cannot attach to the daemon: {exc}", severity="error", markup=False, timeout=30)
            self.bridge.on_client_state("disconnected")

    async def on_unmount(self) -> None:
        await self.bridge.stop()

    def _on_signal(self) -> None:
        """SIGHUP (dropped SSH) / SIGTERM: leave at once; the daemon keeps running and notifying."""
        self.result.reason = "signal"
        if self.owns_daemon:
            self.result.daemon = "kept"
        self.exit(self.result)

    # ------------------------------------------------------------------ keys
    def action_streams(self) -> None:
        from cryptomon_tui.ui.streams import StreamsScreen

        if not isinstance(self.screen, StreamsScreen):
            self.push_screen(StreamsScreen())

    def action_help(self) -> None:
        """Keys of cryptomon first (screen, then app), then the generic table keys, then a legend
        of every status word and symbol on the dashboard."""
        ours: list[tuple[str, str, str]] = []
        generic: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            b = active.binding
            ident = b.id or f"{b.action}:{b.key}"
            if ident in seen or not b.description:
                continue
            seen.add(ident)
            row = (self.get_key_display(b), b.tooltip or b.description, b.id or "")
            mine = bool(b.id) and (active.node is self.screen or active.node is self)
            (ours if mine else generic).append(row)
        ours.sort(key=lambda r: r[2] in ("quit", "quit.ctrl", "help", "theme"))  # dashboard keys, then q ? t
        rows = [("enter", "Details of the selected exchange / incident", ""), *ours,
                ("tab / shift+tab", "Next / previous pane", ""),
                ("ctrl+p", "Command palette (themes, actions)", ""), *generic]
        self.push_screen(HelpModal(rows, HELP_LEGEND))

    async def action_quit(self) -> None:
        if self._quitting:
            return
        if not self.owns_daemon:
            self.exit(self.result)
            return
        preset = self.ui_config.on_quit if self.ui_config.on_quit != "ask" else self.ui_state.on_quit
        if preset in ("keep", "stop"):
            await self._finish(stop=preset == "stop")
            return

        async def chosen(choice: QuitChoice | None) -> None:
            if choice is None:
                return
            if choice.remember and self.persist_state:
                self.ui_state.on_quit = "stop" if choice.stop_daemon else "keep"
                self.ui_state.save()
            await self._finish(stop=choice.stop_daemon)

        self.push_screen(QuitModal(), chosen)

    async def _finish(self, stop: bool) -> None:
        self._quitting = True
        if stop:
            try:
                await self.bridge.shutdown_daemon()
                self.result.daemon = "stopped"
            except Exception as exc:
                self.result.daemon = "stop-failed"
                self.result.messages.append(f"could not stop the daemon: {exc}")
        else:
            self.result.daemon = "kept"
        self.exit(self.result)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Messages go to the dashboard's notice line (below the verdict), not to toasts: toasts
        sit over the right half of the tables, the Rate limit and Breaker columns, at 80x24."""
        try:
            dashboard = self.dashboard
        except LookupError:
            dashboard = None
        if dashboard is None or not dashboard.is_mounted:
            super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)
            return
        text = message
        if markup:
            from textual.markup import to_content

            try:
                text = to_content(message).plain
            except Exception:
                text = message
        dashboard.show_notice(text, str(severity), title=title, timeout=timeout)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Keys", "Every key and its binding id", self.action_help)


_BUILTIN_THEMES: frozenset[str] = frozenset()


def _builtin_theme_names() -> frozenset[str]:
    from textual.theme import BUILTIN_THEMES

    return frozenset(BUILTIN_THEMES)


_BUILTIN_THEMES = _builtin_theme_names()
