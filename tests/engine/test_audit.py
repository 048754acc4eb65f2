"""`gpt2core audit`: one HTML report whose numbers are those of verify, faults and mutation-score."""

from __future__ import annotations

import json
import re

from support.models import CACHE
from support.mutmut_runs import write_run

from gpt2core.cli import main
from gpt2core.mutation import code_stamps
from gpt2core.verification.stress import stress_model_dir
from gpt2core.verification.subject import LAYER_CHECKPOINTS

FAULTS = ["no_scale", "post_norm"]  # two faults keep the test short; the catalogue runs whole in tests/negative


def run_json(capsys, *args) -> tuple[int, dict]:
    rc = main([*args, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out.splitlines()[-1])


def test_audit_report_carries_the_numbers_of_each_command(tiny_dir, tmp_path, capsys, monkeypatch):
    run = write_run(tmp_path / "run", {**{f"gpt2core.ops.x_gelu__mutmut_{i}": 1 for i in range(1, 20)},
                                       "gpt2core.ops.x_gelu__mutmut_20": 0})  # fmt: skip
    stamp = code_stamps([run], ["gpt2core.ops.x_gelu__mutmut_20"])["gpt2core.ops.x_gelu__mutmut_20"]
    (run / "mutmut-equivalents.txt").write_text(f"gpt2core.ops.x_gelu__mutmut_20 @{stamp}: an equivalent rewrite\n")
    monkeypatch.chdir(run)
    stress = str(stress_model_dir(CACHE))
    fault_args = [a for f in FAULTS for a in ("--fault", f)]
    out = tmp_path / "report.html"

    rc, audit = run_json(capsys, "audit", "--model", str(tiny_dir), "--fault-model", stress, *fault_args,
                         "--no-sensitivity", "--out", str(out))  # fmt: skip
    assert rc == 0 and audit["ok"], audit
    _, verify = run_json(capsys, "verify", "--model", str(tiny_dir))
    _, faults = run_json(capsys, "faults", "--model", stress, *fault_args, "--no-sensitivity")
    _, mutation = run_json(capsys, "mutation-score")

    # the same figures as the separate commands (timestamps and temporary paths aside)
    assert [r["checkpoints"] for r in audit["verify"]["runs"]] == [r["checkpoints"] for r in verify["runs"]]
    assert audit["verify"]["weights_sha256"] == verify["weights_sha256"]
    strip = lambda fs: [{k: v for k, v in f.items() if k != "runs"} for f in fs]  # noqa: E731
    assert strip(audit["faults"]["faults"]) == strip(faults["faults"]) and audit["faults"]["caught"] == 2
    assert audit["mutation"] == mutation and mutation["score"] == 0.95

    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)=["']?https?:""", html), "the report must be self-contained"
    for r in verify["runs"]:
        assert f"max abs diff {r['max_abs']:.3e}" in html
        for row in r["checkpoints"]:
            assert f"<td class=\"l\">{row['name']}</td><td>{row['chained']['max_abs']:.3e}</td>" in html
    # per dtype: a heatmap per mode (chained, isolated, cached) of every per-layer checkpoint, and the legend
    assert html.count('<svg class="heatmap"') == 6 and html.count('<svg class="legend"') == 2
    assert html.count('<rect class="cell"') == 6 * len(LAYER_CHECKPOINTS) * 2  # the tiny model's 2 layers
    for f in faults["faults"]:
        assert f"<td class=\"l\">{f['name']}</td>" in html and f"{f['margin']:.3g}" in html
    assert "95.00%" in html and "an equivalent rewrite" in html
    for sha in [*verify["weights_sha256"].values(), *faults["weights_sha256"].values()]:
        assert sha in html


def test_audit_without_mutation_results_says_so_and_a_failing_score_fails(tiny_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stress = str(stress_model_dir(CACHE))
    args = ["audit", "--model", str(tiny_dir), "--fault-model", stress, "--fault", "no_scale", "--no-sensitivity"]
    rc, audit = run_json(capsys, *args, "--out", str(tmp_path / "a.html"))
    assert rc == 3 and audit["verdict"] == "INCOMPLETE" and not audit["ok"]  # a part missing is not a pass
    assert "no mutmut results" in audit["mutation"]["missing"] and audit["missing"][0].startswith("mutation testing")
    html = (tmp_path / "a.html").read_text()
    assert "gpt2core audit: <span class=\"fail\">INCOMPLETE</span>" in html and "Not run: mutation testing" in html
    assert "Mutation testing: no results" in html
    assert main(args + ["--out", str(tmp_path / "c.html")]) == 3
    line = capsys.readouterr().out.strip()
    assert line.startswith("audit: INCOMPLETE (not run: mutation testing") and "PASS" not in line.split(" - ")[0]

    write_run(tmp_path, {"gpt2core.ops.x_gelu__mutmut_1": 1, "gpt2core.ops.x_gelu__mutmut_2": 36})
    rc, audit = run_json(capsys, *args, "--out", str(tmp_path / "b.html"))
    assert rc == 1 and not audit["ok"] and audit["mutation"]["timeout"] == 1
