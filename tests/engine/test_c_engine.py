"""examples/c-engine: a GPT-2 in C99 (standard library only), verified through `gpt2core verify --subject-cmd`
in its own layout (fused QKV, heads last, no batch axis for one row, logits padded to a multiple of 64,
masked scores -inf), and each of its compile-time faults caught at the checkpoint where it lives.

The system C compiler is required: without it these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gpt2core.cli import main

ENGINE = Path(__file__).resolve().parents[2] / "examples" / "c-engine"
# -O3 vectorizes the element-wise loops of the matrix products (-O2 does not): the 124M shape's dumps in every mode
# 95 s -> 61 s, the same bits (ISO C99: no contraction into FMA, no reassociation; checked on every build variant)
CFLAGS = ["-std=c99", "-O3", "-Wall", "-Wextra", "-pedantic", "-Werror"]
# fault -> the checkpoint where it lives (the float64 build on the tiny shape: float64 sees even exact GELU there)
FAULTS = {
    "SCALE_1_OVER_D": "h0.attn_scores",
    "NO_CAUSAL_MASK": "h0.attn_scores",
    "EXACT_GELU": "h0.mlp_act",
    "LN_EPS_1E3": "h0.ln_1",
    "POSITIONS_OFF_BY_ONE": "embeddings",
    "KV_SWAPPED": "h0.k",
}
# the faults only a mode beyond the chained pass can see -> (that mode, where it lives): the chained pass passes
MODE_FAULTS = {
    "CACHE_NOT_CLEARED": ("cached", "h0.k"),  # the unrelated request's keys are still in the cache
    "DECODE_POSITION_OFF_BY_ONE": ("cached", "embeddings"),
    "CACHE_ONE_SLOT_LATE": ("cached", "h0.k"),  # the step's own slot holds a stale key
    "TOP_K_PLUS_ONE": ("sampled", "sampled generation"),
}


def build(out: Path, *defines: str) -> Path:
    cc = shutil.which("cc")
    assert cc, "the C compiler `cc` is not installed: the C engine's tests need it"
    subprocess.run([cc, *CFLAGS, *(f"-D{d}" for d in defines), "-o", str(out), str(ENGINE / "gpt2.c"), "-lm"], check=True)
    return out


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    d = tmp_path_factory.mktemp("c-engine")
    return {"float32": build(d / "gpt2"), "float64": build(d / "gpt2_f64", "USE_DOUBLE")}


def verify(capsys, *args):
    rc = main(["verify", *map(str, args), "--json"])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out else None), out.err


@pytest.mark.parametrize("shape", ["tiny", "124M"])
def test_the_c_engine_passes_in_float32(binaries, shape, capsys, tmp_path, monkeypatch):
    import tempfile

    from support.models import hf_model_dir

    scratch = tmp_path / "scratch"  # where verify puts the references (gpt2core-references-*) and dumps (gpt2core-dumps-*)
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    model = hf_model_dir(shape)
    cmd = f"{binaries['float32']} {model} {{references}} {{dumps}}"
    rc, report, err = verify(capsys, "--model", model, "--subject-cmd", cmd, "--map", ENGINE / "map.json",
                             "--junit", tmp_path / "junit.xml", "--require", "all")  # fmt: skip
    assert rc == 0, err
    (run,) = report["runs"]
    assert run["verdict"] == "PASS" and run["dtype"] == "float32" and run["subject"] == "examples/c-engine (float32)"
    assert run["complete"] and all(m["ran"] and m["ok"] for m in run["modes"].values()), run["modes"]  # every mode ran
    assert all(row["cached"] is not None and row["isolated"] is not None for row in run["checkpoints"])
    assert len(run["generate"]) >= 4 and len(run["sampled"]) == 2 and all(s["ok"] for s in run["sampled"])
    assert run["cases_run"] == run["cases"] and "padded_batch" in run["cases_run"]  # the left-padded batch too
    assert run["checkpoints_provided"] == run["checkpoints_total"]
    from junitparser import JUnitXml

    cases = [c for suite in JUnitXml.fromfile(str(tmp_path / "junit.xml")) for c in suite if "." in c.classname]
    assert len(cases) == len(run["cases"]) * run["checkpoints_total"] and all(not c.result for c in cases)
    assert len({(c.classname, c.name) for c in cases}) == len(cases)
    left = [p.name for p in scratch.iterdir() if p.name.startswith("gpt2core-")]  # (torch keeps a cache there too)
    assert not left, f"verify left the references or the dumps behind: {left}"


@pytest.fixture(scope="module")
def tiny64(tmp_path_factory):
    from support.models import hf_model_dir
    from support.references import reference_set

    model = hf_model_dir("tiny")
    return model, reference_set(model, np.float64, tmp_path_factory)


@pytest.fixture(scope="module")
def dumps64(binaries, tiny64, tmp_path_factory):
    """The float64 build's dumps of the tiny model's float64 references (230 MB), written once for the module."""
    model, refs = tiny64
    out = tmp_path_factory.mktemp("dumps64") / "dumps"
    subprocess.run([binaries["float64"], model, refs.root, out], check=True, capture_output=True)
    return out


def own_copy(dumps: Path, into: Path) -> Path:
    """A copy of the shared dumps that a test may delete files from: hard links, so nothing is rewritten."""
    shutil.copytree(dumps, into, copy_function=os.link)
    return into


def test_the_float64_build_passes_at_float64_tolerance(dumps64, tiny64, capsys):
    model, refs = tiny64
    rc, report, err = verify(capsys, "--model", model, "--references", refs.root, "--dumps", dumps64,
                             "--map", ENGINE / "map-f64.json")  # fmt: skip
    assert rc == 0 and report["runs"][0]["max_rel"] < 1e-12, err
    assert "padded_batch" in report["runs"][0]["cases_run"]


@pytest.fixture(scope="module")
def tiny32(tmp_path_factory):
    from support.models import hf_model_dir
    from support.references import reference_set

    model = hf_model_dir("tiny")
    return model, reference_set(model, np.float32, tmp_path_factory)


def test_the_float16_build_passes_its_class_and_fails_a_stricter_one(tiny32, capsys, tmp_path):
    """The float16-storage build (weights and every checkpoint rounded to float16, float16 files) passes class
    float16 on every checkpoint and case with room (its error is about 1.7x float16 transformers'); held to
    float32-f16kv, which allows float16 rounding only inside attention, its dumps fail from the embeddings on."""
    model, refs = tiny32
    binary = build(tmp_path / "gpt2_f16", "USE_HALF")
    subprocess.run([binary, model, refs.root, tmp_path / "dumps"], check=True, capture_output=True)
    assert np.load(tmp_path / "dumps" / "hello" / "logits.npy").dtype == np.float16
    rc, report, err = verify(capsys, "--model", model, "--references", refs.root, "--dumps", tmp_path / "dumps",
                             "--map", ENGINE / "map-f16.json")  # fmt: skip
    (run,) = report["runs"]
    assert rc == 0 and run["precision"] == "float16" and run["checkpoints_passed"] == run["checkpoints_total"], err
    assert run["cases_run"] == run["cases"] and 0.1 < run["worst_margin"] < 0.75 and run["distribution"]["ok"]
    strict = json.loads((ENGINE / "map-f16.json").read_text()) | {"dtype": "float32-f16kv"}
    (tmp_path / "strict.json").write_text(json.dumps(strict))
    rc, report, _ = verify(capsys, "--model", model, "--references", refs.root, "--dumps", tmp_path / "dumps",
                           "--map", tmp_path / "strict.json")  # fmt: skip
    (run,) = report["runs"]
    assert rc == 1 and run["first_divergence"]["name"] == "embeddings" and run["worst_margin"] > 2


def test_a_float16_fault_build_fails_in_its_class_at_its_checkpoint(tiny32, capsys, tmp_path):
    model, refs = tiny32
    binary = build(tmp_path / "gpt2_f16", "USE_HALF", "FAULT_LN_EPS_1E3")
    subprocess.run([binary, model, refs.root, tmp_path / "dumps"], check=True, capture_output=True)
    rc, report, _ = verify(capsys, "--model", model, "--references", refs.root, "--dumps", tmp_path / "dumps",
                           "--map", ENGINE / "map-f16.json")  # fmt: skip
    assert rc == 1 and report["runs"][0]["first_divergence"]["name"] == "h0.ln_1", report["runs"][0]["first_divergence"]


def test_the_engine_does_not_imitate_transformers_padding_rows(dumps64, tiny64):
    """A padding query has no key to attend to: transformers attends uniformly to every key there, the C
    engine leaves the row at 0. Both are fine, because padding is not compared (the test above passes)."""
    _, refs = tiny64
    case = refs.case("padded_batch")
    b = int(np.argmin(case.attention_mask.sum(axis=1)))  # the shortest row
    pad = int(np.argmax(case.attention_mask[b]))  # its padding positions: 0 .. pad - 1
    ours = np.load(dumps64 / "padded_batch" / "h0_probs.npy")[b, :, :pad]
    theirs = case.array("h0.attn_probs")[b, :, :pad]
    assert pad > 0 and np.all(ours == 0) and np.allclose(theirs, 1 / theirs.shape[-1]), (ours, theirs)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_build_fails_at_its_checkpoint(tiny64, fault, capsys, tmp_path):
    model, refs = tiny64
    binary = build(tmp_path / "gpt2", "USE_DOUBLE", f"FAULT_{fault}")
    subprocess.run([binary, model, refs.root, tmp_path / "dumps"], check=True, capture_output=True)
    rc, report, _ = verify(capsys, "--model", model, "--references", refs.root, "--dumps", tmp_path / "dumps",
                           "--map", ENGINE / "map-f64.json")  # fmt: skip
    first = report["runs"][0]["first_divergence"]
    assert rc == 1 and report["verdict"] == "FAIL"
    assert first["name"] == FAULTS[fault], f"{fault}: first diverging {first['name']}: {first['message']}"


@pytest.mark.parametrize("fault", list(MODE_FAULTS))
def test_each_cache_and_sampler_fault_fails_at_its_step_and_checkpoint(tiny64, fault, capsys, tmp_path):
    """A fault of the KV cache or the sampler leaves the chained pass (and the isolated stages) passing: only its
    mode sees it, at the first decoding step or sampling step, at the checkpoint where it lives."""
    model, refs = tiny64
    binary = build(tmp_path / "gpt2", "USE_DOUBLE", f"FAULT_{fault}")
    subprocess.run([binary, model, refs.root, tmp_path / "dumps"], check=True, capture_output=True)
    rc, report, _ = verify(capsys, "--model", model, "--references", refs.root, "--dumps", tmp_path / "dumps",
                           "--map", ENGINE / "map-f64.json")  # fmt: skip
    (run,) = report["runs"]
    mode, name = MODE_FAULTS[fault]
    first = run["first_divergence"]
    assert rc == 1 and run["verdict"] == "FAIL"
    assert run["modes"]["chained"]["ok"] and run["modes"]["isolated"]["ok"] and not run["modes"][mode]["ok"]
    assert (first["mode"], first["name"]) == (mode, name), f"{fault}: first diverging {first['mode']} {first['name']}: {first['message']}"
    if mode == "cached":  # the first decoded position of the first case that decodes (hello: prefill 1, decode t=1)
        assert first["case"] == "hello" and first["message"].startswith(f"{name}@t=1,b=0"), first["message"]
    else:
        assert "sample.scores@step=0" in first["message"] and "filtered differently" in first["message"]


def test_a_decoding_step_file_missing_fails_naming_the_step_and_file(dumps64, tiny64, capsys, tmp_path):
    model, refs = tiny64
    own_copy(dumps64, tmp_path / "dumps")
    t = int(np.load(refs.root / "sentence" / "decode_split.npy")[0]) + 1  # the second decoding step
    (tmp_path / "dumps" / "sentence" / "decode" / f"t{t}" / "h1_kcache.npy").unlink()
    rc, report, _ = verify(capsys, "--model", model, "--references", refs.root, "--dumps", tmp_path / "dumps",
                           "--map", ENGINE / "map-f64.json")  # fmt: skip
    (run,) = report["runs"]
    first = run["first_divergence"]
    assert rc == 1 and run["modes"]["chained"]["ok"] and not run["modes"]["cached"]["ok"]
    assert first["mode"] == "cached" and first["name"] == "h1.k" and first["case"] == "sentence"
    assert first["message"].startswith(f"h1.k@t={t},b=0") and f"sentence/decode/t{t}/h1_kcache.npy is missing" in first["message"]


@pytest.mark.parametrize(("file", "mode"), [("hello/generated_ids.npy", "generate"),
                                            ("padded_batch/sample.scores@step=2.npy", "sampled"),
                                            ("sentence/stage/h0_act.npy", "isolated")])  # fmt: skip
def test_a_declared_modes_missing_file_fails_that_mode_naming_it(dumps64, tiny64, capsys, tmp_path, file, mode):
    model, refs = tiny64
    own_copy(dumps64, tmp_path / "dumps")
    (tmp_path / "dumps" / file).unlink()
    rc, report, _ = verify(capsys, "--model", model, "--references", refs.root, "--dumps", tmp_path / "dumps",
                           "--map", ENGINE / "map-f64.json")  # fmt: skip
    (run,) = report["runs"]
    assert rc == 1 and [m for m, r in run["modes"].items() if not r["ok"]] == [mode], run["modes"]
    assert run["first_divergence"]["mode"] == mode and f"{file} is missing" in run["first_divergence"]["message"]


def test_a_deleted_dump_file_fails_naming_it(dumps64, tiny64, capsys, tmp_path):
    model, refs = tiny64
    own_copy(dumps64, tmp_path / "dumps")
    (tmp_path / "dumps" / "padded_batch" / "h1_probs.npy").unlink()
    rc, report, _ = verify(capsys, "--model", model, "--references", refs.root, "--dumps", tmp_path / "dumps",
                           "--map", ENGINE / "map-f64.json")  # fmt: skip
    first = report["runs"][0]["first_divergence"]
    assert rc == 1 and first["name"] == "h1.attn_probs" and first["case"] == "padded_batch"
    assert "padded_batch/h1_probs.npy is missing" in first["message"]


def test_a_failing_command_reports_its_status_and_stderr(tiny64, capsys):
    model, _ = tiny64
    rc, _, err = verify(capsys, "--model", model, "--dtype", "float32", "--map", ENGINE / "map.json",
                        "--subject-cmd", "echo engine exploded >&2; exit 7 # {dumps}")  # fmt: skip
    assert rc == 2 and "exited with status 7" in err and "engine exploded" in err and len(err.strip().splitlines()) == 1


def test_a_command_past_its_timeout_is_stopped(tiny64, capsys):
    model, _ = tiny64
    rc, _, err = verify(capsys, "--model", model, "--map", ENGINE / "map.json", "--timeout", "1",
                        "--subject-cmd", "sleep 30 # {dumps}")  # fmt: skip
    assert rc == 2 and "ran past --timeout 1 s and was stopped" in err


def differential_tests(binary: Path, map_file: Path, profile: str, *args: str):
    """The conformance suite's differential property tests (pytest --pyargs gpt2core.conformance -m property)
    on the C engine through --gpt2core-subject-cmd, run inside this process; (exit status, Outcome)."""
    from support.inprocess import run_pytest
    from support.models import CACHE

    return run_pytest(["--pyargs", "gpt2core.conformance", "-m", "property", "-q", "-p", "no:cacheprovider",
                       "--gpt2core-subject-cmd", f"{binary} {{model}} {{references}} {{dumps}}", "--gpt2core-map",
                       str(map_file), "--gpt2core-cache", str(CACHE), "--hypothesis-profile", profile, *args])  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_c_engine_passes_the_differential_property_tests(binaries, dtype):
    """Drawn configs, weights and batches (left padding included) in the ci profile (100 examples), each
    example's inputs run by one process of the engine."""
    ret, outcome = differential_tests(binaries[dtype], ENGINE / ("map.json" if dtype == "float32" else "map-f64.json"), "ci")
    failures = "\n".join(r.longreprtext[-3000:] for r in outcome.failed + outcome.errors)
    assert ret == pytest.ExitCode.OK and len(outcome.passed) == 1, failures
    assert [r.nodeid.split("::")[-1] for r in outcome.passed] == [f"test_drawn_model_matches_transformers[{dtype}]"]


@pytest.mark.parametrize("fault", [*FAULTS, *(f for f, (mode, _) in MODE_FAULTS.items() if mode == "cached")])
def test_each_fault_build_fails_the_differential_property_tests(fault, tmp_path):
    binary = build(tmp_path / "gpt2", "USE_DOUBLE", f"FAULT_{fault}")
    ret, outcome = differential_tests(binary, ENGINE / "map-f64.json", "faults", "-x")  # no shrinking: only failing counts
    assert ret == pytest.ExitCode.TESTS_FAILED and len(outcome.failed) == 1 and not outcome.errors, fault
    assert "reproduce outside pytest:" in outcome.failed[0].longreprtext


def test_the_conformance_suite_runs_its_cached_greedy_and_sampled_tests_on_the_c_engine(binaries):
    """The map's modes are the command subject's capabilities: the conformance suite's parity tests of cached
    decoding, greedy and sampled generation run on the C engine (none skipped for want of a capability) and pass."""
    from support.inprocess import run_pytest
    from support.models import CACHE

    ret, outcome = run_pytest(["--pyargs", "gpt2core.conformance", "-m", "parity", "-q", "-p", "no:cacheprovider",
                               "-k", "cached_decoding or greedy_generation or sampled_generation",
                               "--gpt2core-subject-cmd", f"{binaries['float32']} {{model}} {{references}} {{dumps}}",
                               "--gpt2core-map", str(ENGINE / "map.json"), "--gpt2core-cache", str(CACHE)])  # fmt: skip
    failures = "\n".join(r.longreprtext[-2000:] for r in outcome.failed + outcome.errors)
    ran = [r.nodeid.split("::")[-1] for r in outcome.passed]
    assert ret == pytest.ExitCode.OK and not outcome.failed, failures
    for test in ("test_cached_decoding", "test_greedy_generation", "test_sampled_generation"):
        assert any(n.startswith(test) for n in ran), (test, ran)
    assert not [r for r in outcome.skipped if "capability" in str(r.longrepr)], outcome.skipped
