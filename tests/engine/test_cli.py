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
    r = run_cli("generate", "--model", str(tmp_path / "nope"), "--prompt", "x", env_home=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("gpt2core: error: model directory not found") and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
    debug = run_cli("--debug", "generate", "--model", str(tmp_path / "nope"), "--prompt", "x", env_home=tmp_path)
    assert "Traceback" in debug.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["generate", "--prompt", "", "--max-new-tokens", "3"], "--prompt '' encodes to no tokens"),
    (["generate", "--prompt", "x", "--max-new-tokens", "-1"], "argument --max-new-tokens: -1 is outside 0 or more"),
    (["generate", "--prompt", "x", "--temperature", "0"], "argument --temperature: 0 is outside (0, inf)"),
    (["generate", "--prompt", "x", "--temperature", "nan"], "argument --temperature: nan is outside (0, inf)"),
    (["generate", "--prompt", "x", "--top-k", "-2"], "argument --top-k: -2 is outside 0 or more"),
    (["generate", "--prompt", "x", "--top-p", "1.5"], "argument --top-p: 1.5 is outside (0, 1]"),
    (["generate", "--prompt", "x", "--top-p", "abc"], "argument --top-p: 'abc' is not a number"),
    (["bench", "--threads", "0"], "argument --threads: 0 is outside 1 or more"),
    (["bench", "--repeats", "0"], "argument --repeats: 0 is outside 1 or more"),
    (["bench", "--new-tokens", "x"], "argument --new-tokens: 'x' is not an integer"),
    (["faults", "--fault", "nonsense"], "--fault nonsense: not a known fault"),
    (["audit", "--fault", "nonsense"], "--fault nonsense: not a known fault"),
    (["verify", "--timeout", "-3"], "argument --timeout: -3 is outside (0, inf) seconds"),
    (["verify", "--require", "some"], "argument --require: invalid choice: 'some'"),
])  # fmt: skip
def test_bad_arguments_are_one_line_before_any_work(tiny_dir, tmp_path, monkeypatch, capsys, args, message):
    """Each is refused in one line with exit status 2, before a model is loaded, built or written."""
    from gpt2core import cli

    monkeypatch.setenv("GPT2CORE_HOME", str(tmp_path / "home"))  # nothing may be built there
    monkeypatch.setattr("gpt2core.verification.stress.stress_model_dir", lambda *a: pytest.fail("built the stress model"))
    if args[0] == "generate":
        args = [args[0], "--model", str(tiny_dir), *args[1:]]
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(cli.main(args))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "home").exists()
