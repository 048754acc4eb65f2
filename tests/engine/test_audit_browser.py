"""The audit page as a reader's browser lays it out: headless Chromium (Debian's `chromium` package) renders
the report, and a script run in the page measures it.

Checked: every heatmap cell is drawn with its colour, no label of a map overlaps another, no map overlaps
another map or the legend, each value fits its cell, every point of the error-growth plot lies inside it and
on the side of its budget line its figures say, and the page needs no horizontal scrolling at 1280 px,
for the tiny model's real audit and for the same rows spread over GPT-2 XL's 48 layers. A missing browser
is a failure (install it with `apt-get install chromium`), never a skip.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess

import pytest
from support.models import CACHE

from gpt2core.audit import run_audit
from gpt2core.heatmap import margin_colour
from gpt2core.report import audit_html, verify_html
from gpt2core.verification.stress import stress_model_dir
from gpt2core.verification.subject import LAYER_CHECKPOINTS

WIDTH = 1280
MEASURE = """<script>
const box = e => e.getBoundingClientRect();
const overlap = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
const out = {maps: [], overlaps: [], tooWide: [], scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth};
for (const m of document.querySelectorAll('svg.heatmap')) {
  const cells = [...m.querySelectorAll('rect.cell')];
  out.maps.push({mode: m.dataset.mode, cells: cells.length,
    drawn: cells.filter(c => box(c).width > 0 && box(c).height > 0).length,
    colours: cells.map(c => [c.dataset.margin, getComputedStyle(c).fill])});
  const labels = [...m.querySelectorAll('text.row, text.col, text.title')];
  for (let i = 0; i < labels.length; i++) for (let j = i + 1; j < labels.length; j++)
    if (overlap(box(labels[i]), box(labels[j]))) out.overlaps.push([labels[i].textContent, labels[j].textContent]);
  const values = [...m.querySelectorAll('text.value')];
  values.forEach((v, i) => { if (box(v).width > box(cells[i]).width) out.tooWide.push(v.textContent); });
}
out.growth = [...document.querySelectorAll('svg.growth')].map(g => {
  const frame = box(g);
  const budgets = Object.fromEntries([...g.querySelectorAll('polyline.budget')].map(p =>
    [p.dataset.case, p.getAttribute('points').split(' ').map(xy => xy.split(',').map(Number))]));
  const points = [...g.querySelectorAll('circle.point')];
  const byCase = {};
  const wrongSide = [], outside = [];
  for (const c of points) {
    const k = c.dataset.case; byCase[k] = (byCase[k] || 0) + 1;
    const [bx, by] = budgets[k][byCase[k] - 1];
    const cx = Number(c.getAttribute('cx')), cy = Number(c.getAttribute('cy'));
    const over = Number(c.dataset.rel) > Number(c.dataset.budget);
    if (Math.abs(bx - cx) > 0.05 || (over !== (cy < by)) || String(Number(over)) !== c.dataset.over) wrongSide.push([k, c.dataset.rel, c.dataset.budget]);
    const r = box(c);
    if (r.left < frame.left || r.right > frame.right || r.top < frame.top || r.bottom > frame.bottom) outside.push(k);
  }
  const labels = [...g.querySelectorAll('text')];
  for (let i = 0; i < labels.length; i++) for (let j = i + 1; j < labels.length; j++)
    if (overlap(box(labels[i]), box(labels[j]))) out.overlaps.push([labels[i].textContent, labels[j].textContent]);
  return {dtype: g.dataset.dtype, errors: g.querySelectorAll('polyline.error').length, budgets: Object.keys(budgets).length,
          points: points.length, over: points.filter(c => c.dataset.over === '1').length, drawn: points.filter(c => box(c).width > 0).length,
          wrongSide, outside};
});
const figures = [...document.querySelectorAll('svg.heatmap, svg.legend, svg.growth')];
for (let i = 0; i < figures.length; i++) for (let j = i + 1; j < figures.length; j++)
  if (overlap(box(figures[i]), box(figures[j]))) out.overlaps.push(['figure ' + i, 'figure ' + j]);
document.body.insertAdjacentHTML('beforeend', '<pre id="measured">' + JSON.stringify(out).replace(/</g, '&lt;') + '</pre>');
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install chromium (.ci/run installs it)")
    return path


def render(html: str, tmp_path) -> dict:
    """Load the page (with MEASURE appended) in headless Chromium; the measurements and a screenshot."""
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},3000", "--hide-scrollbars"]  # fmt: skip
    dom = subprocess.run([*flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    found = re.search(r'<pre id="measured">(\{.*?)</pre>', dom.stdout, re.S)  # the element, not the script's text
    assert dom.returncode == 0 and found, f"chromium rc {dom.returncode}: {dom.stderr[-2000:]}"
    shot = subprocess.run([*flags, f"--screenshot={tmp_path / 'report.png'}", page.as_uri()], capture_output=True, timeout=120)
    assert shot.returncode == 0 and (tmp_path / "report.png").stat().st_size > 10_000, shot.stderr[-2000:]
    return json.loads(found.group(1).replace("&lt;", "<").replace("&amp;", "&"))


def css_rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@pytest.fixture(scope="module")
def audit(tiny_dir):
    return run_audit(tiny_dir, stress_model_dir(CACHE), mutation_dirs=[str(CACHE)], faults=["no_scale"], with_sensitivity=False)


def spread_over(audit: dict, n_layer: int) -> dict:
    """The audit with each run's per-layer rows repeated over n_layer layers (GPT-2 XL's width of map)."""
    wide = copy.deepcopy(audit)
    for run in wide["verify"]["runs"]:
        per_layer = [r for r in run["checkpoints"] if r["name"].startswith("h0.")]
        others = [r for r in run["checkpoints"] if not r["name"].startswith("h")]
        run["checkpoints"] = others[:1] + [{**r, "name": f"h{i}.{r['name'][3:]}"} for i in range(n_layer) for r in per_layer] + others[1:]
    return wide


@pytest.mark.parametrize("n_layer", [None, 48], ids=["tiny audit", "spread over 48 layers"])
def test_heatmaps_render_readably_in_chromium(audit, tmp_path, n_layer):
    page = audit if n_layer is None else spread_over(audit, n_layer)
    layers = n_layer or 2
    measured = render(audit_html(page), tmp_path)
    shown = json.dumps({k: v for k, v in measured.items() if k != "maps"})
    assert [m["mode"] for m in measured["maps"]] == ["chained", "isolated", "cached"] * 2, shown
    for m in measured["maps"]:
        assert m["cells"] == m["drawn"] == len(LAYER_CHECKPOINTS) * layers, (m["mode"], m["cells"], m["drawn"])
        wrong = [(margin, fill) for margin, fill in m["colours"]
                 if fill != css_rgb(margin_colour(float(margin) if margin else None))]  # fmt: skip
        assert wrong == [], f"{m['mode']}: cells whose colour is not their margin's: {wrong[:5]}"
    assert measured["overlaps"] == [] and measured["tooWide"] == [], shown
    assert measured["scrollWidth"] <= measured["innerWidth"] == WIDTH, shown


def growth_checks(measured: dict, runs: list[dict]) -> None:
    """Every run has its error-growth plot, one error and one budget line per case, a point per finite
    comparison, each on the side of its budget the numbers say, inside the plot."""
    assert [g["dtype"] for g in measured["growth"]] == [r["dtype"] for r in runs]
    for g, run in zip(measured["growth"], runs):
        results = [res for row in run["checkpoints"] if row["provided"] for res in row["results"]]
        cases = {res["case"] for res in results}
        assert g["errors"] == g["budgets"] == len(cases), g
        assert g["points"] == g["drawn"] == len(results), g
        assert g["over"] == sum(res["max_rel"] > res["budget_rel"] for res in results), g
        assert g["wrongSide"] == [] and g["outside"] == [], g


def test_the_error_growth_plot_shows_each_case_against_its_budget(audit, tmp_path):
    measured = render(audit_html(audit), tmp_path)
    growth_checks(measured, audit["verify"]["runs"])
    assert measured["overlaps"] == [] and measured["scrollWidth"] <= WIDTH, measured["overlaps"]


def test_verify_html_draws_where_a_low_precision_engine_crosses_its_budget(tiny_dir, tmp_path, tmp_path_factory):
    """transformers in float16 held to float32's budgets: its error sits above the budget from the embeddings on,
    and the plot of `gpt2core verify --html` draws those points over their budget line."""
    import numpy as np
    from support.references import reference_set

    from gpt2core.verification.transformers_subject import TransformersSubject
    from gpt2core.verification.verify import verify_references

    refs = reference_set(tiny_dir, np.float32, tmp_path_factory)
    subject = TransformersSubject(tiny_dir, "float16")
    subject.precision = "float32"
    run = verify_references(subject, refs)
    report = {"ok": run["ok"], "verdict": run["verdict"], "model": str(tiny_dir), "runs": [run]}
    measured = render(verify_html(report), tmp_path)
    growth_checks(measured, [run])
    assert measured["growth"][0]["over"] > len(refs.cases), measured["growth"][0]
    assert measured["overlaps"] == [] and measured["scrollWidth"] <= WIDTH, measured["overlaps"]
