"""The error-growth plot of a verify run: the engine's relative error at every checkpoint, in forward-pass order
through the layers, against its budget, one line per case (solid: max|diff| / max|ref|; dashed, same colour:
the budget on the same scale), on a log scale. Where precision is lost shows at a glance: a line that climbs
layer by layer, or crosses its budget, at the checkpoint where it does. Points are drawn only where a value
was compared (a checkpoint the engine did not provide, or whose comparison was a problem, leaves a gap); an
error of exactly 0 sits on the plot's bottom edge, a decade below the smallest non-zero value, as a hollow
point.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 22, 70  # plot margins: y labels on the left, layer labels and the key below


def series(run: dict) -> tuple[list[str], dict[str, list[tuple[int, float, float]]]]:
    """(the provided checkpoints in forward order, {case: [(checkpoint index, rel error, rel budget)]}) of the
    chained comparisons; problems (no finite error) are left out."""
    names = [r["name"] for r in run["checkpoints"] if r["provided"]]
    out: dict[str, list] = {}
    for i, row in enumerate(r for r in run["checkpoints"] if r["provided"]):
        for res in row["results"]:
            if math.isfinite(res["max_rel"]):
                out.setdefault(res["case"], []).append((i, res["max_rel"], res["budget_rel"]))
    return names, out


def error_growth_svg(run: dict) -> str:
    """The plot (see the module docstring) as one SVG element, class "growth"."""
    names, lines = series(run)
    values = [v for pts in lines.values() for _, rel, budget in pts for v in (rel, budget) if v > 0]
    if not values:
        return '<p class="growth-empty">(no checkpoint was compared: no error-growth plot)</p>'
    lo, hi = math.floor(math.log10(min(values))) - 1, math.ceil(math.log10(max(values)))
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x = (lambda i: LEFT + w * (i + 0.5) / len(names))  # noqa: E731
    y = (lambda v: TOP + h * (hi - max(math.log10(v), lo) if v > 0 else hi - lo) / (hi - lo))  # noqa: E731
    parts = [f'<svg class="growth" data-dtype="{escape(run["dtype"])}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
             f'height="{HEIGHT}" font-size="10"><text class="title" x="{LEFT}" y="12" font-weight="bold">relative error '
             f'per checkpoint (solid) against its budget (dashed), {escape(run["precision"])}</text>',
             f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="#999"/>']  # fmt: skip
    step = max(1, math.ceil((hi - lo) / 8))
    for e in range(lo, hi + 1, step):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + w}" y1="{y(10.0**e):.1f}" y2="{y(10.0**e):.1f}" stroke="#eee"/>'
                     f'<text class="ylabel" x="{LEFT - 4}" y="{y(10.0**e) + 3:.1f}" text-anchor="end">1e{e}</text>')  # fmt: skip
    layers = [(i, n.split(".")[0]) for i, n in enumerate(names) if n.endswith(".ln_1")]
    every = max(1, math.ceil(len(layers) * 26 / w))  # a label every `every` layers, 26 px apart at least
    for k, (i, layer) in enumerate(layers):
        parts.append(f'<line x1="{x(i) - w / len(names) / 2:.1f}" x2="{x(i) - w / len(names) / 2:.1f}" y1="{TOP}" '
                     f'y2="{TOP + h}" stroke="#f2f2f2"/>')  # fmt: skip
        if k % every == 0:
            parts.append(f'<text class="xlabel" x="{x(i):.1f}" y="{TOP + h + 17}" text-anchor="middle">{layer}</text>')
    for c, (case, pts) in enumerate(lines.items()):
        colour = PALETTE[c % len(PALETTE)]
        for kind, dash, at in (("error", "", 1), ("budget", ' stroke-dasharray="4 3"', 2)):
            coords = " ".join(f"{x(p[0]):.1f},{y(p[at]):.1f}" for p in pts)
            parts.append(f'<polyline class="{kind}" data-case="{escape(case)}" points="{coords}" fill="none" '
                         f'stroke="{colour}" stroke-width="1.2"{dash}/>')  # fmt: skip
        for i, rel, budget in pts:
            over = rel > budget
            fill = "#d62728" if over else colour if rel > 0 else "none"
            parts.append(f'<circle class="point" data-case="{escape(case)}" data-rel="{rel!r}" data-budget="{budget!r}" '
                         f'data-over="{int(over)}" cx="{x(i):.1f}" cy="{y(rel):.1f}" r="{3 if over else 1.6}" '
                         f'fill="{fill}" stroke="{colour}" stroke-width="0.8"><title>{escape(names[i])}, case {escape(case)}: relative '
                         f'error {rel:.3e}, budget {budget:.3e}</title></circle>')  # fmt: skip
    for c, case in enumerate(lines):
        kx, ky = LEFT + (c % 5) * 140, TOP + h + 30 + 14 * (c // 5)
        parts.append(f'<line x1="{kx}" x2="{kx + 18}" y1="{ky - 3}" y2="{ky - 3}" stroke="{PALETTE[c % len(PALETTE)]}" '
                     f'stroke-width="2"/><text class="key" x="{kx + 22}" y="{ky}">{escape(case[:18])}</text>')  # fmt: skip
    return "".join(parts) + "</svg>"
