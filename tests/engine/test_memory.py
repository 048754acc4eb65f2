"""gpt2core.verification.memory: the sizes it predicts are the sizes written and captured, a run that cannot
fit is refused before anything is loaded, and a verify run reports its peak against its bound."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gpt2core.init_model import SHAPES
from gpt2core.verification.capture import capture
from gpt2core.verification.cases import cases_for
from gpt2core.verification.errors import MemoryNeeded
from gpt2core.verification.memory import (GB, INTERPRETER_BYTES, WEIGHTS_FACTOR, available_bytes, case_bytes,
                                          check_fits, run_memory, weights_bytes)
from gpt2core.verification.model_dir import read_model_dir


def test_weights_bytes_is_what_the_checkpoint_holds(tiny_dir):
    from safetensors import safe_open

    with safe_open(str(tiny_dir / "model.safetensors"), framework="np") as f:
        stored = sum(f.get_tensor(k).size for k in f.keys() if not k.endswith((".attn.bias", ".attn.masked_bias", "lm_head.weight")))
    md = read_model_dir(tiny_dir)
    assert weights_bytes(md.config, np.float32) == stored * 4
    assert weights_bytes(md.config, np.float64) == stored * 8


@pytest.mark.parametrize("shape", ["124M", "355M", "774M", "1558M"])
def test_weights_of_the_gpt2_family(shape):
    """Parameter counts of gpt2, gpt2-medium, gpt2-large and gpt2-xl as Hugging Face states them."""
    params = {"124M": 124_439_808, "355M": 354_823_168, "774M": 774_030_080, "1558M": 1_557_611_200}[shape]
    assert weights_bytes(SHAPES[shape], np.float32) == 4 * params


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_case_bytes_is_what_capture_returns(tiny_dir, dtype):
    md = read_model_dir(tiny_dir)
    for case in cases_for(md):
        arrays = capture(md, case, dtype)
        B, T = case.input_ids.shape
        assert case_bytes(md.config, B, T, dtype) == sum(a.nbytes for a in arrays.values()), case.name


def test_run_memory_is_the_bound_of_the_widest_dtype():
    cfg = SHAPES["355M"]
    plan = run_memory(cfg, [(1, 128), (3, 20)], ["float32", "float64"], also_held_bytes=7)
    assert plan["weights_bytes"] == weights_bytes(cfg, np.float64)
    assert plan["case_references_bytes"] == case_bytes(cfg, 1, 128, np.float64)
    assert plan["bound_bytes"] == int(WEIGHTS_FACTOR * plan["weights_bytes"]) + plan["case_references_bytes"] + 7
    assert plan["needed_bytes"] == plan["bound_bytes"] + INTERPRETER_BYTES


def test_check_fits_names_what_is_needed_and_available():
    plan = run_memory(SHAPES["1558M"], [(1, 1024)], ["float64"])
    with pytest.raises(MemoryNeeded) as e:
        check_fits(plan, "this verify run", available=20 * 10**9)
    message = str(e.value)
    assert f"needs about {plan['needed_bytes'] / GB:.1f} GB" in message and "20.0 GB is available" in message
    check_fits(plan, "this verify run", available=plan["needed_bytes"])  # exactly enough is enough


PEAK_SCRIPT = """
import numpy as np
from gpt2core.verification.memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss
assert reset_peak_rss()
start = current_rss_bytes()
block = np.ones(50 * 2**20 // 8)  # 50 MiB, touched
grown = peak_rss_bytes() - start
del block
assert reset_peak_rss()
print(grown, peak_rss_bytes() - start)
"""


def test_available_and_peak_are_read_from_the_machine():
    """In a fresh process (a long test session's heap may already hold pages a new array reuses): 50 MiB
    touched shows in the peak, and after a reset it no longer does."""
    available = available_bytes()
    assert available is not None and 0 < available
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    grown, after_reset = (int(x) for x in out.stdout.split())
    assert grown >= 45 * 2**20 and after_reset < 10 * 2**20, (grown, after_reset)


def test_verify_refuses_a_run_that_cannot_fit_before_loading_anything(tmp_path):
    """A full-length case of the XL shape in float64 needs ~45 GB: refused in one line, exit 2, before the
    weights (absent here: config.json only) are read."""
    model = tmp_path / "xl"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(SHAPES["1558M"].to_dict()))
    out = subprocess.run([sys.executable, "-m", "gpt2core.cli", "verify", "--model", str(model), "--dtype", "float64",
                          "--full-length"], capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("gpt2core: error: this verify run needs about"), out.stderr
    assert "GB is available" in out.stderr


def test_verify_reports_its_peak_within_the_bound(tiny_dir):
    from gpt2core.verification.verify import verify_model

    report = verify_model(tiny_dir, dtypes=["float64"], prompts=["Hello there", "A longer prompt than that one"])
    m = report["memory"]
    assert report["peak_rss_bytes"] == m["peak_rss_bytes"] >= m["baseline_rss_bytes"] > 0
    assert m["peak_over_baseline_bytes"] == m["peak_rss_bytes"] - m["baseline_rss_bytes"]
    assert m["within_bound"] == (m["peak_over_baseline_bytes"] <= m["bound_bytes"])
    from gpt2core.report import format_memory, format_verify

    line = format_memory(m)
    assert line.startswith(f"memory: peak {m['peak_rss_bytes'] / GB:.2f} GB") and line in format_verify(report).splitlines()
    # gpt2core's own engine, but weights of 13 MB: the run's fixed costs outweigh them, so no bound is judged
    assert m["own_engine"] and not m["bound_applies"] and "OVER" not in line and "within" not in line
    assert "no bound on weights under 1 GiB" in line
    judged = format_memory(dict(m, bound_applies=True))
    assert f"bound {m['bound_bytes'] / GB:.2f} GB" in judged and judged.endswith("within" if m["within_bound"] else "OVER")
    other = format_memory(dict(m, own_engine=False, bound_applies=False))
    assert "the bound is for gpt2core's own engine" in other and "OVER" not in other


@pytest.mark.parametrize(("command", "what"), [
    (["verify", "--dtype", "float64"], "this verify run"),
    (["references", "--dtype", "float64", "--out", "OUT"], "writing these references"),
    (["bench", "--dtype", "float64"], "this benchmark"),
    (["faults"], "the fault catalogue"),
])  # fmt: skip
def test_commands_refuse_what_cannot_fit_in_one_line(tmp_path, monkeypatch, capsys, command, what):
    """Each command that loads a model says how much memory it needs and how much is free, before loading:
    here the XL shape (config.json only, no weights to load) with 4 GB said to be available."""
    from gpt2core import cli
    from gpt2core.verification import memory

    model = tmp_path / "xl"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(SHAPES["1558M"].to_dict()))
    monkeypatch.setattr(memory, "available_bytes", lambda: 4 * 10**9)
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command] + ["--model", str(model)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"gpt2core: error: {what} needs about"), err
    assert "4.0 GB is available" in err and not (tmp_path / "out").exists()


def test_transformers_float64_model_is_loaded_from_an_exact_copy(tiny_dir):
    """hf_model's float64 model (loaded from the float64 copy it maps) has exactly the parameters transformers
    gets converting the float32 file itself; a file already in float64 is used as it is."""
    import torch
    from transformers import GPT2LMHeadModel

    from gpt2core.verification.hf import float64_copy, hf_model, release_hf_models, stored_in_float64

    converted = GPT2LMHeadModel.from_pretrained(str(tiny_dir), dtype=torch.float64).state_dict()
    release_hf_models()
    ours = hf_model(tiny_dir, np.float64).state_dict()
    assert ours.keys() == converted.keys()
    for name, tensor in converted.items():
        assert ours[name].dtype == tensor.dtype and torch.equal(ours[name], tensor), name
    assert not stored_in_float64(tiny_dir)
    with float64_copy(tiny_dir) as copy:
        assert stored_in_float64(copy) and (copy / "config.json").read_bytes() == (tiny_dir / "config.json").read_bytes()
    assert not copy.exists()
    release_hf_models()


@pytest.mark.parametrize("below, collected", [(2**20, False), (4, False), (0, True)])
def test_released_models_are_collected_at_once_from_a_size(below, collected, monkeypatch):
    """release_hf_models collects garbage and gives the heap back (0.2-0.5 s with torch loaded) only for models of
    COLLECT_FROM_BYTES of parameters or more; smaller ones are dropped and left to Python's own collection."""
    import torch

    from gpt2core.verification import hf

    calls = []
    monkeypatch.setattr(hf, "give_back_freed_memory", lambda: calls.append(1))
    model = torch.nn.Linear((hf.COLLECT_FROM_BYTES - below) // 4, 1, bias=False)  # float32: `below` bytes short of it
    monkeypatch.setattr(hf, "_hf_models", {("dir", "float32"): model})
    hf.release_hf_models()
    assert hf._hf_models == {} and calls == ([1] if collected else [])
    hf.release_hf_models()  # nothing loaded: nothing to do
    assert len(calls) == int(collected)
