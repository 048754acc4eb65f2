"""Margin heatmaps for the audit HTML: one small SVG per comparison mode, layers across, per-layer
checkpoints down, each cell coloured by max|diff| / tolerance on a fixed log scale.

The scale is the same for every run (1e-4 .. 1, then red for a failure), so a float32 and a float64 run can be
compared by eye; the exact figures are in each cell's tooltip and in the tables below the maps.
"""

from __future__ import annotations

import math
from html import escape

from .verification.subject import LAYER_CHECKPOINTS

LOG_LOW = -4  # margins at or below 1e-4 take the scale's first colour
VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]  # perceptually uniform, readable in grey
FAIL_COLOUR, MISSING_COLOUR = "#d62728", "#e6e6e6"
LABEL_W, HEAD_H, CELL_H = 96, 34, 18


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def margin_colour(margin: float | None) -> str:
    """The cell colour: grey when not compared, red at or above 1 (a failure), else viridis on log10 in [-4, 0)."""
    if margin is None or margin != margin:
        return MISSING_COLOUR
    if margin >= 1:
        return FAIL_COLOUR
    t = (max(math.log10(margin), LOG_LOW) - LOG_LOW) / -LOG_LOW if margin > 0 else 0.0
    i = min(int(t * (len(VIRIDIS) - 1)), len(VIRIDIS) - 2)
    f = t * (len(VIRIDIS) - 1) - i
    a, b = _rgb(VIRIDIS[i]), _rgb(VIRIDIS[i + 1])
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b))


def _text_colour(fill: str) -> str:
    r, g, b = _rgb(fill)
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def layer_grid(run: dict, mode: str) -> tuple[int, dict[tuple[str, int], dict]]:
    """(n_layer, {(checkpoint kind, layer): the mode's comparison cell}) of a verify run."""
    cells, n_layer = {}, 0
    for row in run["checkpoints"]:
        layer, _, kind = row["name"].partition(".")
        if kind in LAYER_CHECKPOINTS and layer[:1] == "h" and layer[1:].isdigit():
            n_layer = max(n_layer, int(layer[1:]) + 1)
            if row.get(mode) is not None:
                cells[(kind, int(layer[1:]))] = row[mode]
    return n_layer, cells


def margin_heatmap_svg(run: dict, mode: str) -> str:
    """One mode's heatmap: [len(LAYER_CHECKPOINTS) rows, n_layer columns] of coloured cells."""
    n_layer, cells = layer_grid(run, mode)
    cell_w = max(22, min(44, 528 // max(n_layer, 1)))
    width, height = LABEL_W + cell_w * n_layer + 4, HEAD_H + CELL_H * len(LAYER_CHECKPOINTS) + 4
    parts = [f'<svg class="heatmap" data-mode="{mode}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" font-size="10"><text class="title" x="{LABEL_W}" y="12" font-weight="bold">{mode}</text>']  # fmt: skip
    step = max(1, math.ceil(26 / cell_w))  # every layer labelled when cells are wide enough, else every step-th
    for i in range(0, n_layer, step):
        parts.append(f'<text class="col" x="{LABEL_W + cell_w * (i + 0.5):.1f}" y="{HEAD_H - 6}" text-anchor="middle">h{i}</text>')
    for r, kind in enumerate(LAYER_CHECKPOINTS):
        y = HEAD_H + CELL_H * r
        parts.append(f'<text class="row" x="{LABEL_W - 6}" y="{y + 13}" text-anchor="end">{escape(kind)}</text>')
        for i in range(n_layer):
            cell = cells.get((kind, i))
            margin = None if cell is None else cell["margin"]
            fill = margin_colour(margin)
            tip = (f"h{i}.{kind} ({mode}): not compared" if cell is None else
                   f"h{i}.{kind} ({mode}): margin {margin:.3g}, max|diff| {cell['max_abs']:.3e}, tolerance {cell['tolerance']:.3e}"
                   + (f", {cell['problem']}" if cell.get("problem") else ""))  # fmt: skip
            x = LABEL_W + cell_w * i
            parts.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell_w - 1}" height="{CELL_H - 1}" fill="{fill}" '
                         f'data-margin="{"" if margin is None else repr(margin)}"><title>{escape(tip)}</title></rect>')  # fmt: skip
            if margin is not None and cell_w >= 36:
                parts.append(f'<text class="value" x="{x + cell_w / 2:.1f}" y="{y + 12}" text-anchor="middle" font-size="9" '
                             f'fill="{_text_colour(fill)}" pointer-events="none">{margin:.2g}</text>')  # fmt: skip
    return "".join(parts) + "</svg>"


def legend_svg() -> str:
    """The shared colour scale: 1e-4 .. 1 on viridis, then failure (red) and not compared (grey)."""
    bar_w, x0 = 240, 10
    stops = "".join(f'<stop offset="{i / (len(VIRIDIS) - 1):.2f}" stop-color="{c}"/>' for i, c in enumerate(VIRIDIS))
    ticks = "".join(f'<text x="{x0 + bar_w * (e - LOG_LOW) / -LOG_LOW:.0f}" y="34" text-anchor="middle">1e{e}</text>'
                    for e in range(LOG_LOW, 1))  # fmt: skip
    return (f'<svg class="legend" xmlns="http://www.w3.org/2000/svg" width="520" height="40" font-size="10">'
            f'<defs><linearGradient id="viridis">{stops}</linearGradient></defs>'
            f'<rect x="{x0}" y="6" width="{bar_w}" height="14" fill="url(#viridis)"/>{ticks}'
            f'<rect x="{x0 + bar_w + 30}" y="6" width="14" height="14" fill="{FAIL_COLOUR}"/>'
            f'<text x="{x0 + bar_w + 48}" y="17">&#8805; 1: fails</text>'
            f'<rect x="{x0 + bar_w + 120}" y="6" width="14" height="14" fill="{MISSING_COLOUR}"/>'
            f'<text x="{x0 + bar_w + 138}" y="17">not compared</text></svg>')  # fmt: skip


def margin_heatmaps(run: dict) -> str:
    """The heatmaps of every mode that compared something in `run`, side by side, with the legend."""
    maps = [margin_heatmap_svg(run, mode) for mode in ("chained", "isolated", "cached") if layer_grid(run, mode)[1]]
    if not maps:
        return "<p>(no per-layer checkpoint was compared)</p>"
    return f'<div class="maps">{"".join(maps)}</div>{legend_svg()}'
