"""KeyedTable repaints only the rows whose cells changed, and the screen still shows the new text."""

from __future__ import annotations

from textual.app import App, ComposeResult

from cryptomon_tui.ui.present import Cell, Columns
from cryptomon_tui.ui.widgets import KeyedTable

COLUMNS: Columns = (("name", "Name", 10), ("p50", "p50", 8))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable([(0, COLUMNS)], id="t")


def rows(values: dict[str, str]) -> list[tuple[str, dict[str, Cell]]]:
    return [(name, {"name": Cell(name), "p50": Cell(v, "success")}) for name, v in values.items()]


def line_text(table: KeyedTable, y: int) -> str:
    return table.render_line(y).text


async def test_changed_cell_is_drawn_and_other_rows_stay_cached() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one("#t", KeyedTable)
        names = {f"ex{i}": "10ms" for i in range(5)}
        table.show(rows(names))
        await pilot.pause()
        assert "10ms" in line_text(table, 3)  # header is line 0
        cached_other_rows = {k for k in table._row_render_cache.keys() if str(k[0].value) != "ex2"}  # noqa: SIM118
        assert cached_other_rows
        name_cell_of_ex2 = {k for k in table._cell_render_cache.keys()  # noqa: SIM118
                            if (str(k[0].value), str(k[1].value)) == ("ex2", "name")}
        assert name_cell_of_ex2
        update_count = table._update_count
        other_lines = {k for k in table._line_cache.keys() if k[0] != 3}  # noqa: SIM118
        assert other_lines

        table.show(rows({**names, "ex2": "99ms"}))
        # only ex2's line leaves the line cache (no whole-widget repaint of unchanged lines)
        assert other_lines <= set(table._line_cache.keys())
        assert not any(k[0] == 3 for k in table._line_cache.keys())  # noqa: SIM118
        await pilot.pause()

        assert "99ms" in line_text(table, 3)
        assert "10ms" in line_text(table, 1) and "10ms" in line_text(table, 5)
        # no table-wide invalidation: every other row's render is still cached
        assert table._update_count == update_count
        assert cached_other_rows <= set(table._row_render_cache.keys())
        assert name_cell_of_ex2 <= set(table._cell_render_cache.keys())  # only the changed cell re-renders
        assert table.cell_updates == 1


async def test_cursor_row_change_is_drawn() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one("#t", KeyedTable)
        table.show(rows({"a": "1ms", "b": "2ms"}))
        table.focus()
        await pilot.pause()
        assert table.selected_key == "a"
        table.show(rows({"a": "7ms", "b": "2ms"}))
        await pilot.pause()
        assert "7ms" in line_text(table, 1)
        assert table.selected_key == "a"


class ThemedTableApp(App[None]):
    """The app's theme variables ($status-down ...), so cells style exactly as on the dashboard."""

    def get_theme_variable_defaults(self) -> dict[str, str]:
        from cryptomon_tui.ui.theming import APP_VARIABLE_DEFAULTS

        return dict(APP_VARIABLE_DEFAULTS)

    def compose(self) -> ComposeResult:
        yield KeyedTable([(0, (("name", "Name", 6), ("p50", "p50", 8), ("msg", "Message", 14)))], id="t")


async def test_fast_cell_render_matches_datatable() -> None:
    """KeyedTable._render_cell skips Rich's Padding/Styled machinery: it must give DataTable's segments."""
    from rich.style import Style
    from textual.widgets import DataTable

    cells = [
        {"name": Cell("binance_futures", bold=True), "p50": Cell("12.5ms", "status-down", bold=True),
         "msg": Cell("[b]not markup[/b] \\x1b", "text-muted")},
        {"name": Cell(""), "p50": Cell("×▁▂█ 50ms", "spark-high"), "msg": Cell("a much longer message than fits")},
        {"name": Cell("okx"), "p50": Cell("-"), "msg": Cell("終了 wide chars", "status-ok")},
    ]
    app = ThemedTableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one("#t", KeyedTable)
        table.show([(f"k{i}", row) for i, row in enumerate(cells)])
        table.focus()
        await pilot.pause()
        with app._context():
            for row in range(len(cells)):
                for column, (_, _, width) in enumerate(table._columns_now):
                    for cursor, hover in ((False, False), (True, False), (False, True)):
                        for base in (Style(), Style(bgcolor="#102030", color="#ffffff")):
                            table._cell_render_cache.clear()
                            fast = table._render_cell(row, column, base, width + 2, cursor, hover)
                            table._cell_render_cache.clear()
                            slow = DataTable._render_cell(table, row, column, base, width + 2, cursor, hover)
                            assert fast == slow, (row, column, cursor, hover)
            # and the fast path really ran (no fallback to DataTable for these cells)
            table._cell_render_cache.clear()
            fallback = DataTable._render_cell
            try:
                DataTable._render_cell = None  # type: ignore[assignment,method-assign]
                table._render_cell(0, 1, Style(), 10)
            finally:
                DataTable._render_cell = fallback  # type: ignore[method-assign]
