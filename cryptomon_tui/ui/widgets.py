"""Dumb widgets: they draw ``present.Cell`` values and touch only what changed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice

from rich.segment import Segment
from rich.style import Style
from textual._types import SegmentLines
from textual.content import Content
from textual.events import Resize
from textual.style import Style as ContentStyle
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from cryptomon_tui.ui.present import Cell, Columns


def cell_content(cell: Cell) -> Content:
    """Plain text with a theme-variable style: the text is never parsed as markup."""
    if cell.parts:
        return Content.assemble(*(cell_content(part) for part in cell.parts))
    style = " ".join(x for x in (f"${cell.tone}" if cell.tone else "", "bold" if cell.bold else "", cell.extra) if x)
    content = Content.styled(cell.text, style) if style else Content(cell.text)
    if cell.marks and cell.mark_tone:
        for i, ch in enumerate(cell.text):
            if ch in cell.marks:
                content = content.stylize(f"${cell.mark_tone} bold", i, i + 1)
    return content


def cells_content(cells: Iterable[Cell]) -> Content:
    return Content.assemble(*(cell_content(c) for c in cells))


class KeyedTable(DataTable[Content]):
    """A DataTable fed whole row sets each tick, updating only changed cells.

    Rows are keyed (exchange, ``exchange/probe``, incident id); a change of membership or order
    rebuilds the rows but keeps the cursor on the same key, so the table never jumps under the user.
    The column set follows the table's own width (``specs``: (min width, columns)); a column of
    width 0 fills what is left. Changing the set happens only on resize.
    """

    FILL_MIN = 8

    def __init__(self, specs: Sequence[tuple[int, Columns]], *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, id=id)
        self._specs = sorted(specs, key=lambda s: s[0])
        self._columns_now: Columns = ()
        self._width_now = -1
        self._shown: dict[str, dict[str, Cell]] = {}
        self._order: list[str] = []
        self._last_rows: list[tuple[str, dict[str, Cell]]] = []
        self.rebuilds = 0
        self.cell_updates = 0

    def on_mount(self) -> None:
        self._fit_columns(self.size.width)

    def on_resize(self, event: Resize) -> None:
        if self._fit_columns(event.size.width):
            self.show(self._last_rows, force=True)

    def _fit_columns(self, width: int) -> bool:
        """Pick the column set for ``width``; True when the columns changed."""
        spec = self._specs[0][1]
        for min_width, cols in self._specs:
            if width >= min_width:
                spec = cols
        fixed = sum(w for _, _, w in spec if w) + 2 * self.cell_padding * len(spec) + 3  # + scrollbar
        fill = max(self.FILL_MIN, width - fixed)
        columns = tuple((key, label, w or fill) for key, label, w in spec)
        if columns == self._columns_now:
            return False
        self._columns_now = columns
        self.clear(columns=True)
        for key, label, w in columns:
            self.add_column(label, width=w, key=key)
        self._order = []
        self._shown = {}
        return True

    def set_label(self, key: str, label: str) -> None:
        """Change one column's header (the latency scale of the view); repaints only on change."""
        column = self.columns.get(ColumnKey(key))
        if column is None or column.label.plain == label:
            return
        from rich.text import Text

        column.label = Text(label)
        self._update_count += 1  # part of every render cache key: the header (and the rest) redraws once
        self.refresh()

    def column_width(self, key: str) -> int:
        return next((w for k, _, w in self._columns_now if k == key), 0)

    @property
    def selected_key(self) -> str | None:
        if not self._order or self.cursor_row < 0:
            return None
        try:
            row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except (CellDoesNotExist, RowDoesNotExist):
            return None
        return None if row_key.value is None else str(row_key.value)

    def select_key(self, key: str) -> bool:
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return False
        self.move_cursor(row=index)
        return True

    def show(self, rows: Sequence[tuple[str, dict[str, Cell]]], force: bool = False) -> None:
        self._last_rows = list(rows)
        if not self._columns_now:
            return
        keys = [key for key, _, _ in self._columns_now]
        order = [key for key, _ in rows]
        if force or order != self._order:
            selected = self.selected_key
            self.clear()
            self._shown = {}
            for key, cells in rows:
                self.add_row(*(cell_content(cells.get(c, Cell(""))) for c in keys), key=key)
                self._shown[key] = dict(cells)
            self._order = order
            self.rebuilds += 1
            if selected is not None:
                self.select_key(selected)
            return
        shown_cols = set(keys)
        changes: dict[str, dict[str, Content]] = {}
        for key, cells in rows:
            before = self._shown.get(key, {})
            for col, cell in cells.items():
                if col in shown_cols and before.get(col) != cell:
                    changes.setdefault(key, {})[col] = cell_content(cell)
                    self.cell_updates += 1
            self._shown[key] = dict(cells)
        if changes:
            self._set_cells(changes)

    def _set_cells(self, changes: dict[str, dict[str, Content]]) -> None:
        """Put new cell values in and repaint only their rows.

        ``DataTable.update_cell`` bumps a table-wide counter that is part of every render cache key
        and refreshes the whole widget, so one changed cell re-rendered every visible cell (~0.5 ms
        each; most of the UI's CPU on the demo). Here only the changed rows' cache entries are dropped
        and only their regions repainted; unchanged rows are served from the caches.
        """
        changed_rows: set[RowKey] = set()
        changed_cells: set[tuple[RowKey, ColumnKey]] = set()
        for key, columns in changes.items():
            row_key = RowKey(key)
            data = self._data.get(row_key)
            if data is None:
                continue
            for column, value in columns.items():
                column_key = ColumnKey(column)
                data[column_key] = value
                changed_cells.add((row_key, column_key))
            changed_rows.add(row_key)
        if not changed_rows:
            return
        indexes = {self._row_locations.get(row_key) for row_key in changed_rows}
        for cell_key in list(self._cell_render_cache.keys()):
            if (cell_key[0], cell_key[1]) in changed_cells:  # unchanged cells of a changed row stay cached
                self._cell_render_cache.discard(cell_key)
        for row_cache_key in list(self._row_render_cache.keys()):
            if row_cache_key[0] in changed_rows:
                self._row_render_cache.discard(row_cache_key)
        for renderable_key in list(self._row_renderable_cache.keys()):
            if renderable_key[1] in indexes:
                self._row_renderable_cache.discard(renderable_key)
        # lines are cached by y: drop only the changed rows' lines, so the unchanged ones stay cached
        header = self.header_height if self.show_header else 0
        changed_ys = {y + header for y, (row_key, _) in enumerate(self._y_offsets) if row_key in changed_rows}
        for line_key in list(self._line_cache.keys()):
            if line_key[0] in changed_ys:
                self._line_cache.discard(line_key)
        # row regions only, even when most rows changed: a whole-widget refresh would also re-render
        # (border, padding, compositor) every unchanged line
        for index in indexes:
            if index is not None:
                self.refresh_row(index)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        """DataTable's cell render, without the Rich layout machinery for our one-line Content cells.

        DataTable renders a cell as ``console.render_lines(Styled(Padding(cell)))`` (~100-200 us per
        cell here, mostly nested renders and option copies): the UI's largest single cost, paid for
        every changed cell and for every cell after a row set change. For body cells of height-1 rows
        holding Content this does the same steps directly (same Segment functions, same cache and key)
        for the same segments in about half the time; anything else (header, labels, fixed rows or
        columns, other heights) goes to DataTable. tests/ui/test_ui_table_render.py compares both.
        """
        if row_index < 0 or column_index < 0 or self.fixed_rows or self.fixed_columns:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cache_key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor, self._update_count,
                     self._pseudo_class_state)
        cached = self._cell_render_cache.get(cache_key)
        if cached is not None:
            return cached
        pad = self.cell_padding
        row = self.rows.get(row_key)
        _, cells = self._get_row_renderables(row_index)
        cell = cells[column_index] if column_index < len(cells) else None
        if row is None or row.height != 1 or not isinstance(cell, Content) or width - 2 * pad < 1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        null = Style()  # Padding's style ("none")
        inner = list(islice(Segment.split_and_crop_lines(cell.render_segments(ContentStyle(), "\n"), width - 2 * pad,
                                                         include_new_lines=False, pad=True, style=null), 1))
        if len(inner) != 1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css",
        )
        side = [Segment(" " * pad, null)] if pad else []
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        lines: SegmentLines = [list(Segment.apply_style([*side, *inner[0], *side], pre_style, post_style))]
        self._cell_render_cache[cache_key] = lines
        return lines

    def shown_text(self, key: str, column: str) -> str:
        """For tests and the palette: the plain text of one cell (shown or not at this width)."""
        cell = self._shown.get(key, {}).get(column)
        return cell.text if cell is not None else ""

    @property
    def keys(self) -> list[str]:
        return list(self._order)
