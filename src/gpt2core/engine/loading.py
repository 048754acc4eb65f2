"""`load(path)`: a Hugging Face GPT-2 directory (or a locally cached model name) -> `GPT2`."""

from __future__ import annotations

import os

import numpy as np

from .weights import load_params
from .config import GPT2Config
from .errors import CheckpointError, ConfigError
from .hub import resolve_model_dir
from .model import GPT2
from .tokenizer import MERGES_FILE, VOCAB_FILE, GPT2Tokenizer

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def load(path: str | os.PathLike, dtype=np.float32, config: GPT2Config | None = None) -> GPT2:
    """Load config.json, model.safetensors and (when present) vocab.json/merges.txt; weights cast to dtype.

    `config`: the directory's configuration when the caller has already read it (config.json is then not
    parsed again)."""
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    model_dir = resolve_model_dir(path)
    if not any(model_dir.iterdir()):
        raise CheckpointError(f"model directory {model_dir} is empty")
    if config is None:
        config_file = model_dir / "config.json"
        if not config_file.is_file():
            raise ConfigError(f"{model_dir}: config.json not found")
        config = GPT2Config.from_json_file(config_file)
    params = load_params(model_dir, config, dtype)
    has_vocab, has_merges = (model_dir / VOCAB_FILE).is_file(), (model_dir / MERGES_FILE).is_file()
    tokenizer = GPT2Tokenizer.from_dir(model_dir) if has_vocab or has_merges else None
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{model_dir}: {VOCAB_FILE} has {tokenizer.vocab_size} tokens, the model only {config.vocab_size}"
        )
    return GPT2(config, params, tokenizer=tokenizer, path=model_dir)
