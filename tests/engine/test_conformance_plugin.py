"""The conformance suite as a user's repository runs it: a package created outside this repository, with a
GPT-2 of its own in NumPy and an adapter, verified by `pytest --pyargs gpt2core.conformance
--gpt2core-subject=...` in a fresh interpreter; a broken copy of it fails. Also the plugin's options,
skips for a capability, and its refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.models import CACHE

ENGINE = '''
"""A GPT-2 forward pass in NumPy, written apart from gpt2core: the engine a user brings."""
import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def layer_norm(x, g, b, eps=1e-5):  # every call passes eps: a mutant of this default survives (equivalent)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class MiniGPT2:
    def __init__(self, model_dir, dtype):
        self.cfg = json.loads((Path(model_dir) / "config.json").read_text())
        tensors = load_file(str(Path(model_dir) / "model.safetensors"))
        self.w = {k.removeprefix("transformer."): v.astype(dtype) for k, v in tensors.items()}

    def forward(self, ids, mask, positions):
        """Checkpoints of the forward pass on ids [B, T] with a 0/1 mask [B, T] and positions [B, T]."""
        cfg, w = self.cfg, self.w
        H, eps = cfg["n_head"], cfg["layer_norm_epsilon"]
        x = w["wte.weight"][ids] + w["wpe.weight"][positions]
        B, T, C = x.shape
        D = C // H
        out = {"embeddings": x}
        allowed = np.tril(np.ones((T, T), bool))[None, None] & mask.astype(bool)[:, None, None, :]
        for i in range(cfg["n_layer"]):
            p = lambda name: w[f"h.{i}.{name}"]
            h = layer_norm(x, p("ln_1.weight"), p("ln_1.bias"), eps)
            qkv = h @ p("attn.c_attn.weight") + p("attn.c_attn.bias")
            q, k, v = (t.reshape(B, T, H, D).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, axis=-1))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)  # SCALE
            probs = softmax(np.where(allowed, scores, np.finfo(x.dtype).min))
            heads = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
            x = x + heads @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
            h = layer_norm(x, p("ln_2.weight"), p("ln_2.bias"), eps)
            x = x + gelu(h @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias")) @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
            out[f"h{i}.attn_probs"], out[f"h{i}.out"] = probs, x
        out["ln_f"] = x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
        out["logits"] = x @ w["wte.weight"].T
        return out
'''

ADAPTER = '''
"""mini_gpt2 as a gpt2core subject."""
import numpy as np

from mini_gpt2.engine import MiniGPT2


class Subject:
    name = "mini_gpt2"
    capabilities = frozenset()  # no stages, no incremental decoding, no generation

    def __init__(self, model_dir, dtype):
        self.model = MiniGPT2(model_dir.path, dtype)
        n = self.model.cfg["n_layer"]
        self.provides = {"embeddings", "ln_f", "logits"} | {f"h{i}.{k}" for i in range(n) for k in ("attn_probs", "out")}

    def checkpoints(self, case):
        mask = np.ones_like(case.input_ids) if case.attention_mask is None else case.attention_mask
        return self.model.forward(case.input_ids, mask, case.position_ids)


def make_subject(model_dir, dtype):
    return Subject(model_dir, dtype)
'''


def write_package(root: Path, broken: bool = False) -> Path:
    """mini_gpt2/ (engine.py, adapter.py) in root; broken: attention scaled by 1/d instead of 1/sqrt(d)."""
    pkg = root / "mini_gpt2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    engine = ENGINE.replace("/ math.sqrt(D)  # SCALE", "/ D  # SCALE") if broken else ENGINE
    assert engine != ENGINE or not broken
    (pkg / "engine.py").write_text(textwrap.dedent(engine))
    (pkg / "adapter.py").write_text(textwrap.dedent(ADAPTER))
    return root


def run_suite(project: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m pytest --pyargs gpt2core.conformance ARGS` in project, a fresh interpreter, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    env.pop("GPT2CORE_HYPOTHESIS_PROFILE", None)
    argv = [sys.executable, "-m", "pytest", "--pyargs", "gpt2core.conformance", "-p", "no:cacheprovider",
            "--gpt2core-cache", str(CACHE), *args]  # fmt: skip
    return subprocess.run(argv, cwd=project, capture_output=True, text=True, env=env, timeout=900)


# A plugin the broken copy's run loads (-p no_shrink): hypothesis reports the first failing example as drawn. Each
# shrinking step writes a model and runs transformers and the engine on it; shrinking took about 220 of this
# test's 353 s (measured under load), to make smaller an example the test only needs to fail and be reproducible.
NO_SHRINK = """
from hypothesis import Phase, settings

settings.register_profile("no_shrink", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("no_shrink")
"""


def test_a_python_engine_outside_the_repository_passes_and_its_broken_copy_fails(tmp_path):
    good = write_package(tmp_path / "good")
    # the engine named once in the project's pytest.ini (-c: --pyargs alone finds the ini files above gpt2core's)
    (good / "pytest.ini").write_text("[pytest]\ngpt2core_subject = mini_gpt2.adapter:make_subject\n")
    r = run_suite(good, "-c", "pytest.ini", "--gpt2core-examples", "10")
    last = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "rootdir: " + str(good) in r.stdout  # the user's project, not this repository
    # checkpoints it does not provide and modes it does not offer are skipped for a capability, counted apart
    assert " passed" in last and "skipped (capability)" in last and " failed" not in last, last
    assert "skipped for want of a capability" in r.stdout and "checkpoint q (not provided)" in r.stdout
    assert "'stages' (the isolated mode)" in r.stdout and "'decode' (cached decoding)" in r.stdout

    broken = write_package(tmp_path / "broken", broken=True)
    (broken / "no_shrink.py").write_text(NO_SHRINK)
    r = run_suite(broken, "--gpt2core-subject=mini_gpt2.adapter:make_subject", "--gpt2core-examples", "10", "-x",
                  "-m", "property", "-p", "no_shrink")  # fmt: skip
    assert r.returncode == 1, r.stdout[-4000:]
    assert "test_drawn_model_matches_transformers" in r.stdout and "attn_probs" in r.stdout, r.stdout[-4000:]
    assert "reproduce outside pytest:" in r.stdout and "gpt2core verify --model " in r.stdout, r.stdout[-4000:]
    assert "Draw 1 (config):" in r.stdout and "Draw 3 (inputs):" in r.stdout  # the failing example's config and inputs

    # the printed command reproduces the failure outside pytest, on the kept model and references
    command = next(line.strip().removeprefix("E").strip() for line in r.stdout.splitlines() if "gpt2core verify --model" in line)
    env = {**os.environ, "PYTHONPATH": str(broken)}
    v = subprocess.run(command.replace("gpt2core verify", f"{sys.executable} -m gpt2core.cli verify", 1), shell=True,
                       cwd=broken, capture_output=True, text=True, env=env)  # fmt: skip
    assert v.returncode == 1 and "FAIL" in v.stdout and "attn_probs" in v.stdout, v.stdout[-3000:] + v.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "no engine to test: give --gpt2core-subject"),
    (["--gpt2core-subject=mini_gpt2.adapter:make_subject", "--gpt2core-subject-cmd", "x {model} {references} {dumps}"],
     "give one engine, not --gpt2core-subject and --gpt2core-subject-cmd"),
    (["--gpt2core-subject=no_such_module:f"], "cannot import no_such_module"),
    (["--gpt2core-subject-cmd", "./engine {references} {dumps}"], "needs --gpt2core-map MAP"),
    (["--gpt2core-dumps", "dumps", "--gpt2core-map", "/nonexistent/map.json"], "map"),
    (["--gpt2core-subject=mini_gpt2.adapter:make_subject", "--gpt2core-timeout", "soon"], "--gpt2core-timeout 'soon'"),
])  # fmt: skip
def test_a_bad_option_is_one_usage_error(tmp_path, args, message):
    project = write_package(tmp_path / "p")
    (project / "pytest.ini").write_text("[pytest]\n")
    r = run_suite(project, "-c", "pytest.ini", "--co", "-q", *args)
    assert r.returncode == pytest.ExitCode.USAGE_ERROR, r.stdout[-2000:] + r.stderr[-2000:]
    assert message in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]


MUTMUT_SETUP = """
[tool:pytest]
gpt2core_subject = mini_gpt2.adapter:make_subject
gpt2core_cache = {cache}

[mutmut]
source_paths = mini_gpt2/
do_not_mutate = mini_gpt2/adapter.py
pytest_add_cli_args_test_selection =
    tests/
pytest_add_cli_args =
    -p
    no:cacheprovider
    -m
    parity or property or invariants
"""
CONFTEST = """
import os

if os.environ.get("MUTANT_UNDER_TEST"):  # mutmut forks a process per mutant: torch's thread pool hangs after a fork
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from hypothesis import Phase, settings  # noqa: E402

# under mutmut: the same few examples every time, no shrinking (only whether a test fails counts)
settings.register_profile("mutmut", max_examples=5, derandomize=True, database=None, deadline=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
if os.environ.get("MUTANT_UNDER_TEST"):
    settings.load_profile("mutmut")
"""
TEST_FILE = """
from gpt2core.conformance.test_parity import *  # noqa: F401,F403
from gpt2core.conformance.test_differential import *  # noqa: F401,F403
from gpt2core.conformance.test_invariants import *  # noqa: F401,F403
"""


def test_mutmut_runs_a_users_engine_against_the_conformance_suite(tmp_path):
    """The README's worked setup.cfg on mini_gpt2: gelu's and layer_norm's mutants run against the
    conformance suite; the mutants that change the computation are killed, and the one that changes
    layer_norm's unused default epsilon survives (an equivalent mutant, the kind a triage names)."""
    project = write_package(tmp_path / "project")
    (project / "tests").mkdir()
    (project / "tests" / "test_conformance.py").write_text(TEST_FILE)
    (project / "tests" / "conftest.py").write_text(CONFTEST)
    (project / "setup.cfg").write_text(MUTMUT_SETUP.format(cache=CACHE))
    env = {**os.environ, "PYTHONPATH": str(project)}
    for name in ("GPT2CORE_HYPOTHESIS_PROFILE", "MUTANT_UNDER_TEST", "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    run = subprocess.run([sys.executable, "-m", "mutmut", "run", "mini_gpt2.engine.x_gelu__mutmut_*",
                          "mini_gpt2.engine.x_layer_norm__mutmut_*"], cwd=project, capture_output=True, text=True,
                         env=env, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=project,
                             capture_output=True, text=True, env=env)  # fmt: skip
    status = dict(line.strip().rsplit(": ", 1) for line in results.stdout.splitlines() if ": " in line)
    ran = {k: v for k, v in status.items() if "x_gelu__" in k or "x_layer_norm__" in k}
    killed = [k for k, v in ran.items() if v == "killed"]
    survived = [k for k, v in ran.items() if v == "survived"]
    assert len(killed) >= 10 and set(killed) | set(survived) == set(ran), ran
    assert len(survived) >= 1 and all("x_layer_norm__" in k for k in survived), ran
    source = (project / "mutants" / "mini_gpt2" / "engine.py").read_text()
    for name in survived:  # each survivor is the unused default, mutated
        function = source[source.index(f"def {name.split('.')[-1]}("):]
        assert function.splitlines()[0].count("eps=") == 1 and "eps=1e-5" not in function.splitlines()[0], function[:300]
