"""Every styled span on screen must read, in every shipped theme, at true colour, 256 and 16 colours.

The screens are rendered by the real app (dashboard at 80x24 and 160x48, every dialog at 80x24);
each segment's foreground and background (reverse applied) are reduced to the colour depth as Rich
does for the terminal (256: xterm palette; 16: the VGA palette Rich quantizes to, as the Linux console shows it),
then the WCAG contrast ratio is checked: >= 4.5 for text, >= 3 for large/decorative marks (box
drawing, block elements, sparklines, scrollbars). A failure lists theme, depth, text and colours."""

from __future__ import annotations

from typing import Any

import pytest
from rich.color import (
    STANDARD_PALETTE,  # the palette Color.downgrade matches against
    ColorSystem,
)
from rich.color import Color as RichColor
from rich.segment import Segment
from rich.terminal_theme import TerminalTheme

from cryptomon_tui.ui.app import SHIPPED_THEMES, CryptomonApp
from cryptomon_tui.ui.state import UiState
from tests.snapshots.test_ui_snapshots import DIALOGS, _dialog
from tests.ui.harness import FrozenClient, fixture_snapshot

# 16 colours are judged on the palette Rich quantizes to (VGA, as the Linux console, TERM=linux, shows it)
VGA = TerminalTheme((0, 0, 0), (170, 170, 170), [STANDARD_PALETTE[i] for i in range(8)],
                    [STANDARD_PALETTE[i] for i in range(8, 16)])
DEPTHS = {"truecolor": ColorSystem.TRUECOLOR, "256": ColorSystem.EIGHT_BIT, "16": ColorSystem.STANDARD}
TEXT_RATIO = 4.5
MARK_RATIO = 3.0


# Eighth-block edges are the 3D bevels of Textual's buttons and inputs (and the footer's separator):
# they shade a box edge and carry nothing, so they are not judged. Everything else is.
BEVEL = frozenset("▔▁▊▎▏▕▐▌")


def _decorative(ch: str) -> bool:
    code = ord(ch)
    return 0x2500 <= code <= 0x259F or 0x2800 <= code <= 0x28FF or ch in "×·…●"


def _rgb(color: RichColor, depth: ColorSystem) -> tuple[int, int, int]:
    reduced = color.downgrade(depth) if depth is not ColorSystem.TRUECOLOR else color
    t = reduced.get_truecolor(VGA)
    return t.red, t.green, t.blue


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def low_contrast_spans(segments: list[Segment], theme: str) -> list[str]:
    problems: list[str] = []
    for seg in segments:
        text = seg.text
        style = seg.style
        if style is None or not text.strip() or style.color is None or style.bgcolor is None:
            continue
        fg, bg = style.color, style.bgcolor
        if style.reverse:
            fg, bg = bg, fg
        if all(ch in BEVEL or ch.isspace() for ch in text):
            continue
        marks = all(_decorative(ch) or ch.isspace() for ch in text)
        need = MARK_RATIO if marks or (style.bold and len(text.strip()) <= 2) else TEXT_RATIO
        for name, depth in DEPTHS.items():
            f, b = _rgb(fg, depth), _rgb(bg, depth)
            ratio = contrast(f, b)
            if ratio < need:
                problems.append(f"{theme} {name}: {text.strip()!r} fg={f} bg={b} ratio {ratio:.2f} < {need}")
    return problems


def _segments(app: CryptomonApp) -> list[Segment]:
    out: list[Segment] = []
    for strip in app.screen._compositor.render_strips():
        out.extend(strip)
    return out


async def _render(theme: str, size: tuple[int, int], run_before: Any = None) -> list[Segment]:
    app = CryptomonApp(FrozenClient(fixture_snapshot()), theme=theme, state=UiState(), persist_state=False,
                       watch_signals=False, actor="contrast@test")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        if run_before is not None:
            await run_before(pilot)
        await pilot.pause()
        return _segments(app)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("theme", SHIPPED_THEMES)
async def test_dashboard_reads_in_every_theme_and_depth(theme: str) -> None:
    problems: list[str] = []
    for size in ((80, 24), (160, 48)):
        problems += low_contrast_spans(await _render(theme, size), theme)
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("theme", SHIPPED_THEMES)
async def test_dialogs_read_in_every_theme_and_depth(theme: str) -> None:
    problems: list[str] = []
    for dialog in DIALOGS:
        problems += [f"[{dialog}] {p}" for p in low_contrast_spans(await _render(theme, (80, 24), _dialog(dialog)),
                                                                    theme)]
    assert not problems, "\n".join(sorted(set(problems)))


def test_contrast_formula() -> None:
    assert round(contrast((0, 0, 0), (255, 255, 255)), 1) == 21.0
    assert contrast((0x20, 0x25, 0x2D), (0, 0, 0)) < 1.5  # the reported black-on-#20252d case fails
