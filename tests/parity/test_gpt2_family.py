"""The GPT-2 family verified as a user would: `gpt2core init-model DIR --shape S`, then `gpt2core verify --json`
in float32 and float64, each in a process of its own, within the memory bound of gpt2core.verification.memory.

The 355M shape (gpt2-medium: 16 heads, 24 layers) runs in every `pytest tests`; 774M and 1558M (gpt2-large,
gpt2-xl: 25 heads, width 1600, 48 layers) are marked `large_shapes`, which setup.cfg leaves out unless asked:
`pytest tests/parity/test_gpt2_family.py -m large_shapes` (README, "The GPT-2 family", gives their times).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from support.models import CACHE

from gpt2core.init_model import SHAPES
from gpt2core.verification.atomic import build_once

LARGE = pytest.mark.large_shapes
SHAPE_PARAMS = [pytest.param("355M"), pytest.param("774M", marks=LARGE), pytest.param("1558M", marks=LARGE)]
# Hugging Face's configurations of gpt2-medium, gpt2-large and gpt2-xl (their config.json files)
HF_CONFIGS = {
    "355M": {"n_embd": 1024, "n_layer": 24, "n_head": 16},
    "774M": {"n_embd": 1280, "n_layer": 36, "n_head": 20},
    "1558M": {"n_embd": 1600, "n_layer": 48, "n_head": 25},
}


def gpt2core(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpt2core.cli", *args], capture_output=True, text=True, **kwargs)


def family_dir(shape: str, stress: bool = False):
    """`gpt2core init-model DIR --shape shape [--stress]` (seed 0), run once per machine."""

    def build(path):
        out = gpt2core("init-model", str(path), "--shape", shape, *(["--stress"] if stress else []))
        assert out.returncode == 0, out.stderr

    name = f"init-{shape}{'-stress' if stress else ''}-seed0"
    return build_once(CACHE / name, lambda p: (p / "model.safetensors").is_file(), build)


@pytest.mark.parametrize("shape", SHAPE_PARAMS)
def test_init_model_writes_the_configuration_transformers_reads(shape):
    from transformers import GPT2Config

    cfg = GPT2Config.from_pretrained(str(family_dir(shape)))
    expected = dict(HF_CONFIGS[shape], n_positions=1024, vocab_size=50257, n_inner=None, activation_function="gelu_new",
                    layer_norm_epsilon=1e-5, tie_word_embeddings=True)  # fmt: skip
    assert {k: getattr(cfg, k) for k in expected} == expected
    assert {k: getattr(SHAPES[shape], k) for k in HF_CONFIGS[shape]} == HF_CONFIGS[shape]


# Two short prompts: a case each and their left-padded batch, every mode on each. The memory bound is the weights'
# and one case's references; the weights are what a family shape adds (1.4 GB at 355M against a case's few MB),
# so the built-in cases (128 random tokens among them) would prove no more about it (this module in CI: 207 s -> 130 s).
PROMPTS = ("Hello.", "Attention is all you need")


@pytest.mark.parametrize("shape", SHAPE_PARAMS)
def test_verify_passes_within_the_memory_bound(shape, dtype):  # dtype: float32 and float64 (tests/parity/conftest.py)
    dtype = np.dtype(dtype).name
    model = family_dir(shape)
    start = time.perf_counter()
    prompts = [arg for prompt in PROMPTS for arg in ("--prompt", prompt)]
    out = gpt2core("verify", "--model", str(model), "--dtype", dtype, "--json", *prompts)
    seconds = time.perf_counter() - start
    assert out.returncode == 0, out.stderr[-3000:] or out.stdout[-3000:]
    report = json.loads(out.stdout)
    [run] = report["runs"]
    m = report["memory"]
    print(f"{shape} {dtype}: {seconds:.0f} s, peak {m['peak_rss_bytes'] / 1e9:.2f} GB "
          f"({m['peak_over_baseline_bytes'] / 1e9:.2f} GB over the baseline; bound {m['bound_bytes'] / 1e9:.2f} GB), "
          f"worst margin {run['worst_margin']:.3g}")  # fmt: skip
    assert report["verdict"] == "PASS" and run["dtype"] == dtype
    assert all(mode["ran"] and mode["ok"] for mode in run["modes"].values()), run["modes"]
    assert run["cases_run"] == run["cases"] == ["prompt0", "prompt1", "batch"]  # the batch left-padded: one row shorter
    assert run["checkpoints_provided"] == run["checkpoints_total"]
    assert run["checkpoints_total"] == 14 * HF_CONFIGS[shape]["n_layer"] + 3
    assert m["within_bound"], m
    assert m["peak_over_baseline_bytes"] >= m["weights_bytes"], "the weights were loaded, so the peak holds them"


@LARGE
def test_the_fault_catalogue_catches_every_fault_on_a_355M_stress_model():
    """`gpt2core init-model DIR --shape 355M --stress` (16 heads, 24 layers, the stress model's sharp attention,
    random biases and outlier channels), then `gpt2core faults --model DIR`: every fault caught where it lives."""
    from gpt2core.verification.faults import FAULTS

    model = family_dir("355M", stress=True)
    out = gpt2core("faults", "--model", str(model), "--no-sensitivity", "--json")
    assert out.returncode == 0, out.stderr[-3000:] or out.stdout[-3000:]
    report = json.loads(out.stdout)
    missed = {f["name"]: (f["expected_checkpoint"], f["checkpoint"], f["runs"]) for f in report["faults"] if not f["caught"]}
    assert report["caught"] == report["total"] == len(FAULTS) and not missed, missed
