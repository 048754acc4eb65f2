"""Reference GPT-2 models built by transformers itself, and cached so each is built once per machine.

A model directory is what `GPT2LMHeadModel(GPT2Config(...))` with `torch.manual_seed(seed)` writes with
`save_pretrained`, plus GPT-2's real vocabulary, so gpt2core's loader reads exactly what transformers writes.
Directories live in $GPT2CORE_TEST_CACHE (default: <repo>/.cache/test-models); loaded torch models are
kept in a module-level dict so forked test processes (mutmut) reuse them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from gpt2core.init_model import SHAPES, gpt2_vocab_files

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GPT2CORE_TEST_CACHE", REPO / ".cache" / "test-models"))
_torch_models: dict = {}


def hf_model_dir(shape: str = "tiny", seed: int = 0) -> Path:
    """Directory of a GPT-2 of `shape` (see gpt2core.init_model.SHAPES) initialised by transformers."""
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    path = CACHE / f"hf-{shape}-seed{seed}-tf{transformers.__version__}"
    if (path / "model.safetensors").is_file():
        return path
    cfg = SHAPES[shape]
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head, n_positions=cfg.n_positions)
    )
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    encoder, bpe = gpt2_vocab_files()
    shutil.copyfile(encoder, tmp / "vocab.json")
    shutil.copyfile(bpe, tmp / "merges.txt")
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def torch_dtype(dtype):
    import torch

    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]


def hf_model(model_dir: Path, dtype=np.float32):
    """transformers' GPT2LMHeadModel for `model_dir` in eval mode, eager attention, in `dtype`."""
    from transformers import GPT2LMHeadModel

    key = (str(model_dir), np.dtype(dtype).name)
    if key not in _torch_models:
        model = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager", dtype=torch_dtype(dtype))
        _torch_models[key] = model.eval()
    return _torch_models[key]


def hf_positions(mask: np.ndarray) -> np.ndarray:
    """Position ids for a left-padded batch as transformers' generate makes them (cumsum - 1, 1 at padding)."""
    pos = np.cumsum(mask, axis=1) - 1
    pos[mask == 0] = 1
    return pos


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
