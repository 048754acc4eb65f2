"""Parity fixtures: every test runs on the tiny and the 124M shape (and on --gpt2core-model when given).

Reference sets are written by `gpt2core.verification.reference_set.write_references` (transformers' own forward pass) into
.cache/test-models/references under a key that hashes the weights, cases, versions and capture code (see
tests/support/references.py), and read back through `load_references`, which checks the weights' sha256,
every file's sha256, shape and dtype on every load: the tests exercise the same files a user's engine would read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpt2core import checkpoint_names
from gpt2core.engine.config import GPT2Config
from gpt2core.init_model import SHAPES

BUILTIN_SHAPES = ["tiny", "124M"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]


def model_names(config) -> list[str]:
    return BUILTIN_SHAPES + (["user"] if config.getoption("--gpt2core-model") else [])


def n_layer_of(config, name: str) -> int:
    if name == "user":
        return GPT2Config.from_json_file(Path(config.getoption("--gpt2core-model")) / "config.json").n_layer
    return SHAPES[name].n_layer


def pytest_generate_tests(metafunc):
    config = metafunc.config
    if "checkpoint" in metafunc.fixturenames:  # one test per checkpoint of every layer of every model
        pairs = [(m, c) for m in model_names(config) for c in checkpoint_names(n_layer_of(config, m))]
        metafunc.parametrize(("model_dir", "checkpoint"), pairs, indirect=["model_dir"], ids=[f"{m}-{c}" for m, c in pairs])
    elif "model_dir" in metafunc.fixturenames:
        metafunc.parametrize("model_dir", model_names(config), indirect=True)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


@pytest.fixture(scope="session")
def model_dir(request):
    from support.models import hf_model_dir

    if request.param == "user":
        path = Path(request.config.getoption("--gpt2core-model"))
        if not (path / "config.json").is_file():
            pytest.fail(f"--gpt2core-model {path}: no config.json there (give a Hugging Face GPT-2 directory)")
        return path
    return hf_model_dir(request.param)


@pytest.fixture
def reference_set(model_dir, dtype, tmp_path_factory):
    """The default cases' reference set for (model_dir, dtype), cached under a content key, loaded with checks."""
    from support.references import reference_set

    return reference_set(model_dir, dtype, tmp_path_factory)
