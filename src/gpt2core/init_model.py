"""Writing a GPT-2 checkpoint directory with GPT-2's initialisation and the real GPT-2 vocabulary.

The directory is what `save_pretrained` writes (config.json, model.safetensors with `transformer.`
keys, tied head omitted) plus vocab.json/merges.txt, so transformers loads it unchanged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from .engine.config import GPT2Config, published_config
from .engine.tokenizer import MERGES_FILE, VOCAB_FILE, gpt2_vocab_files
from .engine.weights import expected_shapes
from .verification.atomic import atomic_directory, build_once
from .verification.model_dir import gpt2core_home

# The configurations of Hugging Face's gpt2, gpt2-medium, gpt2-large and gpt2-xl (head size 64 throughout),
# and a tiny one for tests.
SHAPES = {
    "124M": GPT2Config(n_embd=768, n_layer=12, n_head=12, n_positions=1024),
    "355M": GPT2Config(n_embd=1024, n_layer=24, n_head=16, n_positions=1024),
    "774M": GPT2Config(n_embd=1280, n_layer=36, n_head=20, n_positions=1024),
    "1558M": GPT2Config(n_embd=1600, n_layer=48, n_head=25, n_positions=1024),
    "tiny": GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=128),
}


def init_tensors(config: GPT2Config, seed: int) -> dict[str, np.ndarray]:
    """GPT-2's initialisation: N(0, 0.02) for embeddings and projections, N(0, 0.02/sqrt(2 n_layer)) for the
    two residual projections, LayerNorm gain 1 and every bias 0. float32, keyed as save_pretrained writes."""
    rng = np.random.default_rng(seed)
    std = config.initializer_range
    tensors = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith("bias"):
            t = np.zeros(shape, np.float32)
        elif ".ln_" in name or name.startswith("ln_f"):
            t = np.ones(shape, np.float32)
        else:
            scale = std / math.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else std
            t = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        tensors["transformer." + name] = t
    return tensors


def write_model_dir(out_dir: str | os.PathLike, config: GPT2Config, tensors: dict[str, np.ndarray]) -> Path:
    """Write config.json, model.safetensors, vocab.json, merges.txt into out_dir (new or empty), atomically."""
    with atomic_directory(out_dir) as tmp:
        (tmp / "config.json").write_text(json.dumps(published_config(config.to_dict()), indent=2, sort_keys=True) + "\n")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        encoder, bpe = gpt2_vocab_files()
        shutil.copyfile(encoder, tmp / VOCAB_FILE)
        shutil.copyfile(bpe, tmp / MERGES_FILE)
        (tmp / "tokenizer_config.json").write_text(json.dumps({
            "model_max_length": config.n_positions, "tokenizer_class": "GPT2Tokenizer",
            "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        }, indent=2) + "\n")  # fmt: skip
    return Path(out_dir)


def init_model(out_dir: str | os.PathLike, shape: str = "124M", seed: int = 0, stress: bool = False) -> Path:
    """A model directory of one of SHAPES: GPT-2's initialisation, or with `stress` the stress model's weights
    (gpt2core.verification.stress: sharp attention, random biases, outlier channels; built by transformers)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    config = SHAPES[shape]
    if stress:
        from .verification.hf import require_transformers
        from .verification.stress import build_stress_model

        require_transformers()
        fields = ("n_embd", "n_layer", "n_head", "n_positions")
        return build_stress_model(out_dir, seed, {f: getattr(config, f) for f in fields})
    return write_model_dir(out_dir, config, init_tensors(config, seed))


def builtin_model_dir() -> Path:
    """The built-in 124M-shape model (seed 0), created on first use in gpt2core_home()."""
    return build_once(gpt2core_home() / "gpt2-124M-seed0", lambda p: (p / "model.safetensors").is_file(),
                      lambda p: init_model(p, "124M", seed=0))  # fmt: skip
