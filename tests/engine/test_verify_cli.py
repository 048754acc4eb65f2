"""`gpt2core references` and `gpt2core verify`: files written, reports read back, faults reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gpt2core.verification.faults import inject

from gpt2core import checkpoint_names
from gpt2core.cli import main
from gpt2core.verification.reference_set import MANIFEST, load_references


def verify_json(capsys, *args) -> tuple[int, dict]:
    rc = main(["verify", *args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_references_command_writes_npy_and_manifest(tiny_dir, tmp_path, capsys):
    out = tmp_path / "refs"
    rc = main(["references", "--model", str(tiny_dir), "--out", str(out), "--prompt", "Hello.", "--prompt", "Hi there you"])
    assert rc == 0, capsys.readouterr().err
    refs = load_references(out, tiny_dir)
    assert [c.name for c in refs.cases] == ["prompt0", "prompt1", "batch"]
    assert refs.case("prompt0").input_ids.tolist() == [[15496, 13]]
    assert refs.case("batch").attention_mask.tolist()[0][0] == 0  # "Hello." is left-padded in the batch
    assert refs.dtype == np.float64
    names = checkpoint_names(2)
    inputs = ["attention_mask", "input_ids", "position_ids", "lengths"]
    modes = ["decode_split", "unrelated_ids", "generate_tokens"]  # what a file engine runs in the other modes
    assert sorted(p.stem for p in (out / "prompt1").glob("*.npy")) == sorted(names + inputs + modes)
    sampled = [f"sample.{kind}@step={i}" for i in range(4) for kind in ("scores", "logits")] + ["sample_ids", "sample_settings"]
    assert sorted(p.stem for p in (out / "prompt0").glob("*.npy")) == sorted(names + inputs + modes + sampled)
    batch = refs.case("batch")  # the inputs as plain int64 files, for engines without a JSON parser
    for name, expected in (("input_ids", batch.input_ids), ("attention_mask", batch.attention_mask),
                           ("position_ids", batch.position_ids)):  # fmt: skip
        array = np.load(out / "batch" / f"{name}.npy", allow_pickle=False)
        assert array.dtype == np.dtype("<i8") and np.array_equal(array, expected), name
    assert np.load(out / "prompt0" / "attention_mask.npy").tolist() == [[1, 1]]  # no padding: all ones
    lengths = np.load(out / "batch" / "lengths.npy", allow_pickle=False)  # tokens per row, for right-padded engines
    assert lengths.dtype == np.dtype("<i8") and lengths.tolist() == batch.attention_mask.sum(axis=1).tolist()
    assert lengths[0] < lengths[1]  # "Hello." is the shorter row
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"].startswith("gpt2core references --model")
    with pytest.raises(SystemExit) as refused:  # never overwrites a set
        main(["references", "--model", str(tiny_dir), "--out", str(out)])
    assert refused.value.code == 2 and "is not empty" in capsys.readouterr().err


def test_verify_json_passes_with_both_dtypes(tiny_dir, capsys):
    rc, report = verify_json(capsys, "--model", str(tiny_dir))
    assert rc == 0 and report["ok"]
    assert [r["dtype"] for r in report["runs"]] == ["float32", "float64"]
    f32, f64 = report["runs"]
    assert 0 < f64["max_abs"] < 1e-12 < f32["max_abs"] < 2e-5
    assert [row["name"] for row in f32["checkpoints"]] == checkpoint_names(2)
    assert all(row["chained"]["ok"] and row["isolated"]["ok"] for row in f64["checkpoints"])
    assert f32["first_divergence"] is None


def test_verify_table_lists_every_checkpoint(tiny_dir, capsys):
    assert main(["verify", "--model", str(tiny_dir), "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    for name in checkpoint_names(2):
        assert f"\n{name} " in out
    assert "modes: chained PASS, isolated PASS, cached PASS, generate PASS, sampled PASS" in out
    assert "verify: PASS - float64 compared 31 of 31 checkpoints (31 passed) over 5 of 5 cases" in out
    assert "verified" not in out


@pytest.mark.parametrize(("fault", "first"), [("no_causal_mask", "h0.attn_scores"), ("exact_gelu", "h0.mlp_act")])
def test_verify_reports_a_fault_at_its_checkpoint(tiny_dir, capsys, fault, first):
    with inject(fault):
        rc, report = verify_json(capsys, "--model", str(tiny_dir), "--dtype", "float64")
    assert rc == 1 and not report["ok"]
    run = report["runs"][0]
    assert run["first_divergence"]["name"] == first, run["first_divergence"]
    (row,) = [r for r in run["checkpoints"] if r["name"] == first]
    assert not row["isolated"]["ok"], "the isolated comparison must blame the same stage"


def test_verify_with_reference_directories(tiny_dir, tmp_path, capsys):
    out = tmp_path / "refs32"
    assert main(["references", "--model", str(tiny_dir), "--out", str(out), "--dtype", "float32"]) == 0
    capsys.readouterr()
    rc, report = verify_json(capsys, "--model", str(tiny_dir), "--references", str(out))
    assert rc == 0 and [r["dtype"] for r in report["runs"]] == ["float32"]
    assert report["runs"][0]["references"] == str(out)


def test_verify_refuses_references_of_other_weights(tiny_dir, tmp_path, capsys):
    from support.models import hf_model_dir

    out = tmp_path / "refs"
    assert main(["references", "--model", str(hf_model_dir("tiny", seed=1)), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["verify", "--model", str(tiny_dir), "--references", str(out)]) == 2
    assert "made for other weights" in capsys.readouterr().err


def test_faults_command_json(capsys):
    rc = main(["faults", "--fault", "no_causal_mask", "--fault", "qkv_wrong_order", "--no-sensitivity", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["caught"] == report["total"] == 2
    by_name = {f["name"]: f for f in report["faults"]}
    assert by_name["no_causal_mask"]["checkpoint"] == "h0.attn_scores"
    assert by_name["qkv_wrong_order"]["checkpoint"] == "h0.q" and by_name["qkv_wrong_order"]["margin"] > 1
    assert main(["faults", "--fault", "no_such_fault"]) == 2


def test_reference_sets_record_transformers_sampled_generation(tiny_dir, tmp_path, capsys):
    """Two sampling runs (SAMPLING_RUNS), batches first; each holds transformers' own path and scores."""
    from gpt2core.verification.capture import capture_sampling
    from gpt2core.verification.sampling import SAMPLING_RUNS

    out = tmp_path / "refs"
    assert main(["references", "--model", str(tiny_dir), "--out", str(out), "--prompt", "Hello.", "--prompt", "Hi there you"]) == 0
    refs = load_references(out, tiny_dir)
    assert [(c.name, c.sampling and c.sampling[0]) for c in refs.cases] == [
        ("prompt0", SAMPLING_RUNS[1]), ("prompt1", None), ("batch", SAMPLING_RUNS[0])]
    for case in (refs.case("batch"), refs.case("prompt0")):
        settings, ids = case.sampling
        again = capture_sampling(tiny_dir, case, "float64", settings)  # seeded: the same path and scores again
        assert np.array_equal(ids, again[0]) and ids.shape == (case.input_ids.shape[0], case.input_ids.shape[1] + 4)
        for step in range(settings.max_new_tokens):
            scores = case.array(f"sample.scores@step={step}")
            assert scores.dtype == np.float32 and np.array_equal(scores, again[1][step])
            assert np.array_equal(case.array(f"sample.logits@step={step}"), again[2][step])
            kept = np.isfinite(scores).sum(-1)
            assert (kept >= 1).all() and (kept <= settings.top_k).all(), kept


def test_verify_reports_a_sampling_fault_in_the_sampled_mode(tiny_dir, capsys):
    with inject("sampling_top_k_keeps_one_more"):
        rc, report = verify_json(capsys, "--model", str(tiny_dir), "--dtype", "float64")
    run = report["runs"][0]
    assert rc == 1 and run["modes"]["chained"]["ok"] and not run["modes"]["sampled"]["ok"], run["modes"]
    failing = [g for g in run["sampled"] if not g["ok"]]
    assert failing and failing[0]["settings"]["top_k"] == 5
    assert "filtered differently" in failing[0]["steps"][0]["problem"], failing[0]["steps"][0]


def test_verify_html_writes_the_page_with_the_error_growth_plot(tiny_dir, tmp_path, capsys):
    page = tmp_path / "verify.html"
    rc, report = verify_json(capsys, "--model", str(tiny_dir), "--dtype", "float32", "--html", str(page))
    html = page.read_text(encoding="utf-8")
    assert rc == 0 and report["verdict"] == "PASS"
    assert "<h1>gpt2core verify: " in html and 'class="pass"' in html.split("</h1>")[0]
    assert html.count('<svg class="growth"') == len(report["runs"]) == 1 and 'class="heatmap"' in html
    results = sum(len(r["results"]) for r in report["runs"][0]["checkpoints"])
    assert html.count('<circle class="point"') == results  # one point per case and checkpoint compared
