"""Random GPT-2s for property tests: the same weights in transformers and in gpt2core."""

from __future__ import annotations

import numpy as np
import torch

import gpt2core
from gpt2core.engine.weights import params_from_tensors
from gpt2core.engine.model import GPT2


def hf_random_model(cfg: dict, seed: int, init_std: float, dtype):
    """transformers' GPT2LMHeadModel from `cfg`, initialised by its own _init_weights with std init_std."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**cfg, initializer_range=init_std, attn_implementation="eager"))
    if init_std != 0.02:  # non-trivial LayerNorm gains and biases, so swapped or missing ones show
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "ln_" in name or name.endswith("bias"):
                    p.add_(torch.randn_like(p) * init_std)
    from support.models import torch_dtype

    return model.to(torch_dtype(dtype)).eval()


def engine_from_hf(hf_model, dtype) -> GPT2:
    """gpt2core's model holding exactly hf_model's weights."""
    cfg = {k: getattr(hf_model.config, k) for k in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head",
                                                     "layer_norm_epsilon", "bos_token_id", "eos_token_id")}  # fmt: skip
    config = gpt2core.GPT2Config(**cfg)
    tensors = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
    return GPT2(config, params_from_tensors(tensors, config, np.dtype(dtype), source="random model"))
