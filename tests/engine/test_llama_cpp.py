"""llama.cpp verified stage by stage (examples/llama-cpp): GGUFs converted from the tiny model by llama.cpp's own
converter (and quantizer), run by llama-cpp-python 0.3.36 (the `llama-cpp` extra; compiled once per machine),
every named tensor of its GPT-2 graph read through the scheduler's eval callback for a packed batch of every
row, judged through the maps beside the driver.

What llama.cpp does differently from transformers, and where gpt2core finds it:
- its CPU GELU reads a float16 table: with an f32 GGUF and a float32 KV cache every checkpoint before
  h0.mlp_act passes float32's budgets and h0.mlp_act fails, by exactly that table; declared as a deviation it
  is WAIVED (never a plain PASS; INCOMPLETE under --require all);
- its default float16 KV cache: a first divergence inside attention in class float32, verified in class
  float32-f16kv;
- f16, q8_0 and q4_0 weights: each passes its GGUF class and fails float32's.
Missing llama-cpp-python is a failure of these tests, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from support.llama_cpp import EXAMPLE, HOME, llama_cpp_dir

from gpt2core.cli import main
from gpt2core.verification.batch_layout import token_mask
from gpt2core.verification.dumps import DumpMap, DumpSubject
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.precision.budgets import budgets_for

_dumps: dict = {}


@pytest.fixture(scope="module")
def tiny_refs(tiny_dir, tmp_path_factory):
    from support.references import reference_set

    return tiny_dir, reference_set(tiny_dir, np.float32, tmp_path_factory)


@pytest.fixture(autouse=True)
def home(monkeypatch):
    """Converted GGUFs and llama.cpp's converter are kept beside the test models, built once per machine."""
    llama_cpp_dir()  # fetched under a lock once, before concurrent workers convert
    monkeypatch.setenv("GPT2CORE_HOME", str(HOME))


def command(gguf_type: str, kv_cache: str) -> list[str]:
    return [sys.executable, str(EXAMPLE / "dump.py"), "{model}", "{references}", "{dumps}", "--type", gguf_type,
            "--kv-cache", kv_cache, "--threads", "1"]  # fmt: skip


def dumps(tiny_refs, tmp_path_factory, gguf_type: str, kv_cache: str):
    """The driver's dumps of the tiny model's reference set (a GGUF of `gguf_type`), written once per module run."""
    model, refs = tiny_refs
    key = (gguf_type, kv_cache)
    if key not in _dumps:
        out = tmp_path_factory.mktemp(f"llama-{gguf_type}-{kv_cache}")
        argv = [a.replace("{model}", str(model)).replace("{references}", str(refs.root)).replace("{dumps}", str(out))
                for a in command(gguf_type, kv_cache)]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "GPT2CORE_HOME": str(HOME)})
        assert done.returncode == 0, done.stderr[-3000:]
        _dumps[key] = out
    return _dumps[key]


def verify(capsys, tiny_refs, map_name: str, *extra) -> tuple[int, dict, str]:
    model, refs = tiny_refs
    rc = main(["verify", "--model", str(model), "--references", str(refs.root), "--dtype", "float32",
               "--map", str(EXAMPLE / map_name), *map(str, extra), "--json"])  # fmt: skip
    out = capsys.readouterr()
    return rc, json.loads(out.out), out.err


def first_failing(run) -> str:
    return run["first_divergence"]["name"]


def forward_order(refs) -> list[str]:
    return refs.checkpoint_names


def gelu_table(x: np.ndarray) -> np.ndarray:
    """ggml's CPU GELU of float32 x (GGML_GELU_FP16, ggml-cpu/vec.h): x rounded to float16, tanh-GELU in float32
    of that, rounded to float16; x at or beyond +-10 passes through (as x, or 0)."""
    h = x.astype(np.float16).astype(np.float32)
    c = np.float32(0.79788456080286535587989211986876)
    g = np.float32(0.5) * h * (np.float32(1) + np.tanh(c * h * (np.float32(1) + np.float32(0.044715) * h * h)))
    y = g.astype(np.float16).astype(np.float32)
    return np.where(x >= 10, x, np.where(x <= -10, np.float32(0), y))


def gelu_new(x: np.ndarray) -> np.ndarray:
    """transformers' gelu_new, in float64."""
    x = x.astype(np.float64)
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def test_f32_gguf_first_diverges_at_mlp_act_for_its_float16_gelu_table(tiny_refs, tmp_path_factory, capsys):
    model, refs = tiny_refs
    d = dumps(tiny_refs, tmp_path_factory, "f32", "f32")
    rc, report, err = verify(capsys, tiny_refs, "map-f32.json", "--dumps", d)
    assert rc == 1, err
    (run,) = report["runs"]
    assert run["verdict"] == "FAIL" and run["checkpoints_compared"] == len(refs.checkpoint_names)
    assert run["cases_run"] == [c.name for c in refs.cases] and "padded_batch" in run["cases_run"]
    assert first_failing(run) == "h0.mlp_act", run["first_divergence"]
    order = forward_order(refs)
    before = order[: order.index("h0.mlp_act")]
    passed = {row["name"] for row in run["checkpoints"] if row["ok"]}
    assert set(before) <= passed, sorted(set(before) - passed)
    assert "h0.mlp_act" not in passed and "EXCEEDS TOLERANCE" in run["first_divergence"]["message"]

    # the reason: llama.cpp's h0.mlp_act is the float16 table's GELU of its own h0.mlp_fc, and the exact GELU of
    # that same mlp_fc is within float32's budget of transformers' h0.mlp_act
    subject = DumpSubject(d, DumpMap.from_file(EXAMPLE / "map-f32.json"), read_model_dir(model).config)
    budgets = budgets_for(refs, "float32")
    for case in refs.cases:
        tokens = token_mask(case)
        fc, act = subject.checkpoint(case, "h0.mlp_fc")[tokens], subject.checkpoint(case, "h0.mlp_act")[tokens]
        table = gelu_table(fc)
        ulp = np.spacing(np.abs(table).astype(np.float16)).astype(np.float32)
        assert np.all(np.abs(act - table) <= ulp), f"{case.name}: max |act - table| {np.abs(act - table).max():.3g}"
        exact = np.abs(gelu_new(fc) - case.array("h0.mlp_act")[tokens]).max()
        assert exact <= budgets.atol(case.name, "h0.mlp_act"), (case.name, exact, budgets.atol(case.name, "h0.mlp_act"))
        assert np.abs(act - case.array("h0.mlp_act")[tokens]).max() > 4 * budgets.atol(case.name, "h0.mlp_act")


def test_the_gelu_table_declared_as_a_deviation_is_waived_never_a_plain_pass(tiny_refs, tmp_path_factory, capsys):
    model, refs = tiny_refs
    d = dumps(tiny_refs, tmp_path_factory, "f32", "f32")
    rc, report, err = verify(capsys, tiny_refs, "map-f32-gelu-waived.json", "--dumps", d)
    assert rc == 0, err
    (run,) = report["runs"]
    order = forward_order(refs)
    waived = {w["name"] for w in run["waived"]}
    assert run["verdict"] == "PASS" and run["checkpoints_waived"] == len(waived) > 0
    assert "h0.mlp_act" in waived and min(order.index(n) for n in waived) == order.index("h0.mlp_act")
    assert all("float16 table" in w["reason"] for w in run["waived"])
    assert run["distribution"]["waived"], run["distribution"]
    text_rc = main(["verify", "--model", str(model), "--references", str(refs.root), "--dtype", "float32",
                    "--map", str(EXAMPLE / "map-f32-gelu-waived.json"), "--dumps", str(d)])  # fmt: skip
    text = capsys.readouterr().out
    assert text_rc == 0 and "WAIVED h0.mlp_act" in text and "GGML_GELU_FP16" in text
    rc, report, _ = verify(capsys, tiny_refs, "map-f32-gelu-waived.json", "--dumps", d, "--require", "all")
    assert rc != 0 and report["runs"][0]["verdict"] == "INCOMPLETE"


@pytest.mark.parametrize(("gguf_type", "kv_cache", "map_name"), [
    ("f32", "f16", "map-f32-f16kv.json"), ("f16", "f16", "map-f16.json"), ("q8_0", "f16", "map-q8_0.json"),
])  # fmt: skip
def test_each_gguf_type_passes_its_class_and_fails_float32s(tiny_refs, tmp_path_factory, capsys, gguf_type, kv_cache, map_name):
    model, refs = tiny_refs
    d = dumps(tiny_refs, tmp_path_factory, gguf_type, kv_cache)
    rc, report, err = verify(capsys, tiny_refs, map_name, "--dumps", d)
    (run,) = report["runs"]
    assert rc == 0 and run["verdict"] == "PASS", (err, run["first_divergence"])
    assert run["precision"] == json.loads((EXAMPLE / map_name).read_text())["dtype"]
    assert run["checkpoints_passed"] == run["checkpoints_compared"] == len(refs.checkpoint_names)
    assert run["cases_run"] == [c.name for c in refs.cases]
    order = forward_order(refs)
    waived = {w["name"] for w in run["waived"]}
    assert all(order.index(n) >= order.index("h0.mlp_act") for n in waived), waived  # only the GELU table is waived
    rc, report, err = verify(capsys, tiny_refs, "map-f32.json", "--dumps", d)
    (run,) = report["runs"]
    assert rc == 1 and run["verdict"] == "FAIL"
    first = first_failing(run)
    assert order.index(first) < order.index("h0.mlp_act"), first  # an error the GELU table does not explain
    if gguf_type == "f32":  # float32 weights: the float16 KV cache is the first difference, inside attention
        assert first in ("h0.attn_scores", "h0.attn_probs", "h0.attn_heads"), first


def test_q4_0_passes_its_class_through_the_command_as_the_readme_shows(tiny_refs, capsys):
    """As the README shows: the driver converts the model directory (llama.cpp's quantizer for q4_0) and runs it."""
    template = " ".join(command("q4_0", "f16"))
    rc, report, err = verify(capsys, tiny_refs, "map-q4_0.json", "--subject-cmd", template)
    (run,) = report["runs"]
    assert rc == 0 and run["verdict"] == "PASS", (err, run["first_divergence"])
    assert run["precision"] == "gguf-q4_0" and run["checkpoints_passed"] == len(tiny_refs[1].checkpoint_names)
    assert run["distribution"]["ok"] and run["distribution"]["top1_agreement"] < 1  # q4_0 changes next tokens


def test_every_map_beside_the_driver_declares_the_same_layout():
    """The maps differ in precision class, engine name and deviations only: the layout is the driver's."""
    maps = sorted(EXAMPLE.glob("map-*.json"))
    assert len(maps) >= 6
    layouts = {p.name: json.loads(p.read_text()) for p in maps}
    base = layouts["map-f32.json"]
    for name, m in layouts.items():
        DumpMap.from_file(EXAMPLE / name)
        assert {k: v for k, v in m.items() if k in ("checkpoints", "batch_layout", "masked_scores")} == {
            k: base[k] for k in ("checkpoints", "batch_layout", "masked_scores")}, name


def test_the_driver_names_what_it_cannot_run(tmp_path, tiny_refs):
    model, refs = tiny_refs
    done = subprocess.run([sys.executable, str(EXAMPLE / "dump.py"), str(tmp_path / "nothing.gguf"), str(refs.root),
                           str(tmp_path / "d")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "no GGUF file or model directory" in done.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF not really")
    done = subprocess.run([sys.executable, str(EXAMPLE / "dump.py"), str(bad), str(refs.root), str(tmp_path / "d")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "could not load" in done.stderr

