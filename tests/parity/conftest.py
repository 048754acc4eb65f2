"""Parity fixtures: every test runs on the tiny and the 124M shape (and on --gpt2core-model when given)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHAPES = ["tiny", "124M"]


def pytest_generate_tests(metafunc):
    if "model_dir" in metafunc.fixturenames:
        names = SHAPES + (["user"] if metafunc.config.getoption("--gpt2core-model") else [])
        metafunc.parametrize("model_dir", names, indirect=True)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])


@pytest.fixture(scope="session")
def model_dir(request):
    from support.models import hf_model_dir

    if request.param == "user":
        path = Path(request.config.getoption("--gpt2core-model"))
        if not (path / "config.json").is_file():
            pytest.fail(f"--gpt2core-model {path}: no config.json there (give a Hugging Face GPT-2 directory)")
        return path
    return hf_model_dir(request.param)
