"""Reference GPT-2 models built by transformers itself, and cached so each is built once per machine.

A model directory is what `GPT2LMHeadModel(GPT2Config(...))` with `torch.manual_seed(seed)` writes with
`save_pretrained`, plus GPT-2's real vocabulary, so gpt2core's loader reads exactly what transformers writes.
Directories live in $GPT2CORE_TEST_CACHE (default: <repo>/.cache/test-models); loaded torch models are
kept in gpt2core.verification.hf's module-level dict so forked test processes (mutmut) reuse them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gpt2core.conformance.builtin import transformers_model_dir
from gpt2core.verification import cases, hf

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GPT2CORE_TEST_CACHE", REPO / ".cache" / "test-models"))


def hf_model_dir(shape: str = "tiny", seed: int = 0) -> Path:
    """Directory of a GPT-2 of `shape` (see gpt2core.init_model.SHAPES) initialised by transformers (the
    conformance suite's built-in tiny model is this directory)."""
    return transformers_model_dir(CACHE, shape, seed)


# transformers' model and positions come from the package's reference code, so tests and
# `gpt2core references` load each model once per process and agree on the convention.
hf_model = hf.hf_model
torch_dtype = hf.torch_dtype
hf_positions = cases.transformers_positions


def hf_logits(model_dir: Path, ids: np.ndarray, dtype=np.float32, attention_mask=None) -> np.ndarray:
    """transformers' logits [B, T, V] for ids [B, T] (left padding given by attention_mask)."""
    import torch

    model = hf_model(model_dir, dtype)
    kwargs = {}
    if attention_mask is not None:
        kwargs = dict(attention_mask=torch.tensor(attention_mask), position_ids=torch.tensor(hf_positions(attention_mask)))
    with torch.no_grad():
        return model(torch.tensor(ids), **kwargs).logits.numpy()


_engine_models: dict = {}


def engine_model(model_dir: Path, dtype=np.float32):
    """gpt2core's model for `model_dir` in `dtype`, loaded once per process."""
    import gpt2core

    key = (str(model_dir), np.dtype(dtype).name)
    if key not in _engine_models:
        _engine_models[key] = gpt2core.load(model_dir, dtype=dtype)
    return _engine_models[key]


def engine_checkpoints(model, cases) -> dict[str, dict[str, np.ndarray]]:
    """Case name -> every checkpoint gpt2core's `model` records on the case's rows (its attention mask included)."""
    recs = {}
    for case in cases:
        recs[case.name] = {}
        model.forward(case.input_ids, case.attention_mask, checkpoints=recs[case.name])
    return recs


def engine_subject(model_dir: Path, dtype=np.float32):
    """gpt2core's engine for `model_dir` in `dtype` as a subject of the verification (one per process)."""
    from gpt2core.verification.numpy_subject import NumpySubject

    return NumpySubject(engine_model(model_dir, dtype))
