"""Running transformers: its GPT2LMHeadModel loaded for a model directory, and saving one as a directory.

Needs torch and transformers (`pip install "gpt2core[test]"`); nothing else in gpt2core imports them at
module level.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..engine.tokenizer import MERGES_FILE, VOCAB_FILE, gpt2_vocab_files
from .atomic import atomic_directory
from .errors import ReferencesError

_hf_models: dict = {}


def require_transformers():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise ReferencesError(
            f"building references needs torch and transformers ({e}); install them with "
            "pip install \"gpt2core[test]\", or pass a reference directory made elsewhere"
        ) from None


def torch_dtype(dtype):
    """The torch dtype of numpy float32 or float64."""
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[np.dtype(dtype).name]


def hf_model(model_dir, dtype):
    """transformers' GPT2LMHeadModel for model_dir in eval mode with eager attention, loaded once per process."""
    require_transformers()
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Loading weights" bar in reports
    key = (str(Path(str(model_dir)).resolve()), np.dtype(dtype).name)
    if key not in _hf_models:
        model = GPT2LMHeadModel.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch_dtype(dtype))
        _hf_models[key] = model.eval()
    return _hf_models[key]


def save_transformers_model(model, out_dir) -> Path:
    """`model.save_pretrained` plus GPT-2's real vocabulary, into out_dir (new or empty), moved into place last."""
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp)
        encoder, bpe = gpt2_vocab_files()
        shutil.copyfile(encoder, tmp / VOCAB_FILE)
        shutil.copyfile(bpe, tmp / MERGES_FILE)
    return Path(out_dir)
