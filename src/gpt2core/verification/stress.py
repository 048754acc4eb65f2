"""Test weights that make faults visible: a GPT-2 built by transformers, then sharpened in torch.

With transformers' random initialisation attention is nearly uniform, biases are zero and LayerNorm is the
identity, so a wrong attention scale, a missing bias or swapped LayerNorm parameters barely move the output.
This model keeps transformers' architecture and loading path (GPT2LMHeadModel + save_pretrained) and only
changes weight values, the way trained GPT-2's differ from initialisation:
  - queries and keys scaled so attention is sharp (head 0 of every layer very sharp: scores of hundreds);
  - every bias random, LayerNorm gains in [0.5, 1.5] and biases random (so each parameter matters);
  - a few residual channels with large embeddings (activation outliers, as trained GPT-2 has).
Any shape can be built (`gpt2core init-model DIR --shape 355M --stress`): the scales are set for SHAPE's width
and divided by sqrt(n_embd / 64) at others, so scores and logits keep their size (see build_stress_model).
References for it still come from transformers' forward pass (gpt2core.verification.capture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .atomic import build_once
from .hf import save_transformers_model
from .model_dir import gpt2core_home

SHAPE: dict[str, Any] = dict(n_embd=64, n_layer=2, n_head=4, n_positions=64)
QK_SCALE = 8.0  # every head: scores ~ 64x transformers' init (std ~2) at SHAPE's width (see build_stress_model)
SHARP_HEAD_QK_SCALE = 80.0  # head 0: scores of several hundred, one-hot attention (softmax overflow without max)
OUTLIER_CHANNELS = (3, 17, 40)
OUTLIER_SCALE = 200.0  # at SHAPE's width (see build_stress_model)


def build_stress_model(out_dir, seed: int = 0, shape: dict[str, Any] | None = None) -> Path:
    """Write the stress model (config.json, model.safetensors, vocab.json, merges.txt) to out_dir; `shape`:
    n_embd, n_layer, n_head and n_positions (default SHAPE; n_embd > max(OUTLIER_CHANNELS))."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**(SHAPE if shape is None else shape)))
    sharpen(model, seed, OUTLIER_CHANNELS)
    return save_transformers_model(model, out_dir)


def sharpen(model, seed: int, outlier_channels) -> None:
    """Make transformers' GPT2LMHeadModel `model` a stress model in place: sharp attention (head 0 of every
    layer sharpest), random biases and LayerNorm parameters, large embeddings on `outlier_channels`."""
    import torch

    C = model.config.n_embd
    D = C // model.config.n_head
    # a score sums C-wide products of q and k: its size grows as n_embd, so q and k are scaled to keep the
    # scores the size they have at SHAPE's width (at 1024 wide, unscaled, the sharp head's scores reach thousands
    # and float64's rounding of them alone moves its probabilities by 1.3e-12, past the float64 tolerance)
    qk_scale = QK_SCALE * (SHAPE["n_embd"] / C) ** 0.5
    # likewise the logits: the outlier channels carry the residual stream, so after ln_f each holds ~sqrt(C/3) and
    # the logits grow as sqrt(C) times the outliers' embeddings; scaled back, the next-token distribution stays
    # as flat as at SHAPE's width (at 1024 wide, unscaled, top-p 0.9 kept one token: the sampling faults hid)
    outlier_scale = OUTLIER_SCALE * (SHAPE["n_embd"] / C) ** 0.5
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for block in model.transformer.h:
            w = block.attn.c_attn.weight  # [C, 3C]: q | k | v
            w[:, : 2 * C] *= qk_scale
            w[:, :D] *= SHARP_HEAD_QK_SCALE / QK_SCALE
            w[:, C : C + D] *= SHARP_HEAD_QK_SCALE / QK_SCALE
            for lin in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=gen))
            for ln in (block.ln_1, block.ln_2):
                ln.weight.copy_(0.5 + torch.rand(ln.weight.shape, generator=gen))
                ln.bias.copy_(0.2 * torch.randn(ln.bias.shape, generator=gen))
        ln_f = model.transformer.ln_f
        ln_f.weight.copy_(0.5 + torch.rand(ln_f.weight.shape, generator=gen))
        ln_f.bias.copy_(0.2 * torch.randn(ln_f.bias.shape, generator=gen))
        for c in outlier_channels:
            model.transformer.wte.weight[:, c] *= outlier_scale
            model.transformer.wpe.weight[:, c] *= outlier_scale


def stress_model_dir(cache_dir=None) -> Path:
    """The stress model, built once in cache_dir (default: gpt2core_home())."""
    import transformers

    path = Path(cache_dir or gpt2core_home()) / f"stress-seed0-tf{transformers.__version__}"
    return build_once(path, lambda p: (p / "model.safetensors").is_file(), build_stress_model)
