"""The command line on the built-in model: greedy ids equal transformers' generate on the same directory."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


def run_cli(*args, env_home):
    import os

    env = {**os.environ, "GPT2CORE_HOME": str(env_home)}
    return subprocess.run([sys.executable, "-m", "gpt2core.cli", *args], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_generate_on_builtin_model_matches_transformers(tmp_path_factory):
    import torch
    from transformers import GPT2LMHeadModel

    home = tmp_path_factory.mktemp("home")
    r = run_cli("generate", "--prompt", "Hello.", "--max-new-tokens", "10", "--json", env_home=home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["prompt_ids"] == [15496, 13] and len(out["new_ids"]) == 10
    assert out["text"].startswith("Hello.")
    model_dir = home / "gpt2-124M-seed0"
    hf = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        ref = hf.generate(torch.tensor([[15496, 13]]), max_new_tokens=10, do_sample=False, pad_token_id=50256)
    assert out["prompt_ids"] + out["new_ids"] == ref[0].tolist()
    plain = run_cli("generate", "--prompt", "Hello.", "--max-new-tokens", "10", env_home=home)
    assert plain.returncode == 0 and plain.stdout.rstrip("\n") == out["text"]


def test_init_model_and_generate_with_model_dir(tmp_path):
    r = run_cli("init-model", str(tmp_path / "m"), "--shape", "tiny", "--seed", "1", env_home=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("generate", "--model", str(tmp_path / "m"), "--prompt", "Hi", "--max-new-tokens", "3",
                "--seed", "2", "--top-k", "5", "--json", env_home=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["new_ids"]) == 3


def test_errors_are_one_line_without_traceback(tmp_path):
    """An error met while working (here a malformed config.json) is one line; --debug shows the traceback."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{")
    r = run_cli("generate", "--model", str(tmp_path / "m"), "--prompt", "x", env_home=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("gpt2core: error: ") and "config.json" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    debug = run_cli("--debug", "generate", "--model", str(tmp_path / "m"), "--prompt", "x", env_home=tmp_path)
    assert "Traceback" in debug.stderr
