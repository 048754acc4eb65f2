"""The honest implementation of a precision class: transformers' own GPT-2 at that precision.

float32, float16, bfloat16: transformers loaded in that dtype (torch's CPU kernels run all three). The other
classes are emulated in float32 by rounding what the format rounds, the way it rounds it:
  int8           every Conv1D weight per output channel and the lm_head (tied wte) per vocabulary row, to
                 int8 with one float32 scale amax/127; every linear layer's input per row the same way
                 (CTranslate2's int8_float32: int8 products, float32 elsewhere)
  gguf-q8_0      2-D weights (wte, every Conv1D; not wpe, which llama.cpp's converter keeps float32) in q8_0
                 blocks of 32 along the input axis (scale amax/127 stored as float16, round to nearest);
                 the inputs of their products the same (ggml's CPU vec_dot_type for q8_0 and q4_0 is q8_0)
  gguf-q4_0      the same with q4_0 weights (scale = the block's signed extreme / -8, float16; values 0..15
                 offset by 8)
  gguf-f16       2-D weights and the inputs of their products rounded to float16
  float16 KV     (float32-f16kv and every gguf class) q, k, v and the probabilities multiplied with v rounded
                 to float16, as ggml converts its float32 operand to the float16 cache's type
Needs torch and transformers.
"""

from __future__ import annotations

from contextlib import contextmanager

Q_BLOCK = 32  # values per q8_0 / q4_0 block (ggml's QK8_0, QK4_0)


def round_f16(x):
    """x rounded to float16, kept in its dtype."""
    import torch

    return x.to(dtype=torch.float16).to(x.dtype)


def int8_rows(x):
    """Symmetric int8 along the last axis: one scale amax/127 per row, round to nearest."""
    import torch

    scale = x.abs().amax(dim=-1, keepdim=True) / 127
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.round(x / scale).clamp(-127, 127) * scale


def q8_0(x):
    """ggml's q8_0 along the last axis: blocks of 32, d = amax/127 kept in float16, q = round(x/d) (a last axis
    that is not a multiple of 32 falls back to float16, as llama.cpp's converter does)."""
    import torch

    if x.shape[-1] % Q_BLOCK:
        return round_f16(x)
    b = x.reshape(*x.shape[:-1], -1, Q_BLOCK)
    d = b.abs().amax(dim=-1, keepdim=True) / 127
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.round(b * inv)
    return (q * round_f16(d)).reshape(x.shape)


def q4_0(x):
    """ggml's q4_0 along the last axis: blocks of 32, d = (the value of largest magnitude) / -8 in float16,
    q = min(15, trunc(x/d + 8.5)), value (q - 8) * d."""
    import torch

    if x.shape[-1] % Q_BLOCK:
        return round_f16(x)
    b = x.reshape(*x.shape[:-1], -1, Q_BLOCK)
    extreme = torch.gather(b, -1, b.abs().argmax(dim=-1, keepdim=True))
    d = extreme / -8
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.clamp(torch.trunc(b * inv + 8.5), 0, 15)
    return ((q - 8) * round_f16(d)).reshape(x.shape)


# class -> (weight rounding along the input axis, input rounding, float16 KV cache)
EMULATED = {
    "int8": (int8_rows, int8_rows, False),
    "float32-f16kv": (None, None, True),
    "gguf-f16": (round_f16, round_f16, True),
    "gguf-q8_0": (q8_0, q8_0, True),
    "gguf-q4_0": (q4_0, q8_0, True),
}
NATIVE = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def honest_model(model_dir, precision: str):
    """A fresh transformers GPT2LMHeadModel (eval, eager attention) computing as precision class `precision`
    does; emulated classes come with hooks that stay on the model (see `float16_attention` for the KV cache)."""
    import torch
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    if precision not in NATIVE and precision not in EMULATED:
        raise ValueError(f"no honest implementation for precision {precision!r}")
    dtype = getattr(torch, NATIVE.get(precision, "float32"))
    model = GPT2LMHeadModel.from_pretrained(str(model_dir), attn_implementation="eager", dtype=dtype).eval()
    if precision in EMULATED:
        weights, inputs, _ = EMULATED[precision]
        t = model.transformer
        with torch.no_grad():
            if weights is not None:
                t.wte.weight.copy_(weights(t.wte.weight))  # [V, C]: along C, the input axis of the tied lm_head
                for block in t.h:
                    for conv in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                        conv.weight.copy_(weights(conv.weight.T).T)  # Conv1D weight [in, out]: along in
        if inputs is not None:
            linears = [model.lm_head] + [m for b in t.h for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]
            for m in linears:
                m.register_forward_pre_hook(lambda module, args, f=inputs: (f(args[0]),) + tuple(args[1:]))
    return model


def kv_in_float16(precision: str) -> bool:
    return precision in EMULATED and EMULATED[precision][2]


@contextmanager
def float16_attention(model, precision: str):
    """While active, `model`'s attention rounds q, k, v (c_attn's output) and the probabilities entering the
    product with v to float16 (a float16 KV cache); a no-op for classes without one. The probabilities
    transformers returns, and a capture records, are the unrounded ones (as ggml's kq_soft_max)."""
    if not kv_in_float16(precision):
        yield
        return
    import torch
    from transformers.models.gpt2 import modeling_gpt2

    original = modeling_gpt2.eager_attention_forward

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        scaling = query.size(-1) ** -0.5 if scaling is None else scaling
        scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = torch.nn.functional.softmax(scores, dim=-1)
        return torch.matmul(round_f16(probs), value).transpose(1, 2), probs

    hooks = [b.attn.c_attn.register_forward_hook(lambda m, a, out: round_f16(out)) for b in model.transformer.h]
    modeling_gpt2.eager_attention_forward = attention  # ty: ignore[invalid-assignment] (transformers' own, rounded)
    try:
        yield
    finally:
        modeling_gpt2.eager_attention_forward = original
        for h in hooks:
            h.remove()
