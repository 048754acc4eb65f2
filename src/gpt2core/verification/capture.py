"""Capturing every checkpoint from transformers' own GPT-2 forward pass, never recomputing one.

`capture` runs `transformers.GPT2LMHeadModel` (eager attention) once and records the checkpoints of
gpt2core.verification.subject from the real modules:
  - forward hooks (a module's output): the embedding dropout (embeddings), ln_1, attn (attn_out), ln_2,
    mlp.c_fc (mlp_fc), mlp.act (mlp_act), mlp (mlp_out), each block (out), ln_f;
  - forward pre-hooks (a module's input): attn.c_proj (attn_heads), ln_2 (resid_mid);
  - queries, keys and values are the arguments transformers passes to its own `eager_attention_forward`,
    the masked scores are the input of its softmax and the probabilities its return value.
`capture_greedy` records transformers' own `generate(do_sample=False)` continuation of a case.
"""

from __future__ import annotations

import numpy as np

from .errors import ReferencesError
from .hf import hf_model
from .subject import checkpoint_names


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _inputs(case) -> tuple:
    """(input_ids, {position_ids, attention_mask}) as torch tensors."""
    import torch

    kwargs = {"position_ids": torch.tensor(case.position_ids)}
    if case.attention_mask is not None:
        kwargs["attention_mask"] = torch.tensor(case.attention_mask)
    return torch.tensor(case.input_ids), kwargs


def capture(model_dir, case, dtype, model=None) -> dict[str, np.ndarray]:
    """Every checkpoint of transformers' forward pass on `case`, as NumPy arrays under their canonical names;
    `model` (default: transformers' model for model_dir in dtype) may be one at another precision
    (gpt2core.verification.precision.honest), whose arrays come out in its dtype."""
    import torch
    from transformers.models.gpt2 import modeling_gpt2

    model = hf_model(model_dir, dtype) if model is None else model
    rec: dict[str, torch.Tensor] = {}

    def output_of(name):
        def hook(module, args, output):
            rec[name] = _first(output)

        return hook

    def input_of(name):
        def hook(module, args):
            rec[name] = args[0]

        return hook

    t = model.transformer
    if len({id(block.mlp.act) for block in t.h}) != len(t.h):
        raise ReferencesError("transformers shares one activation module between blocks: mlp_act cannot be captured per layer")
    hooks = [t.drop.register_forward_hook(output_of("embeddings")), t.ln_f.register_forward_hook(output_of("ln_f"))]
    for i, block in enumerate(t.h):
        h = f"h{i}."
        hooks += [
            block.ln_1.register_forward_hook(output_of(h + "ln_1")),
            block.attn.c_proj.register_forward_pre_hook(input_of(h + "attn_heads")),
            block.attn.register_forward_hook(output_of(h + "attn_out")),
            block.ln_2.register_forward_pre_hook(input_of(h + "resid_mid")),
            block.ln_2.register_forward_hook(output_of(h + "ln_2")),
            block.mlp.c_fc.register_forward_hook(output_of(h + "mlp_fc")),
            block.mlp.act.register_forward_hook(output_of(h + "mlp_act")),
            block.mlp.register_forward_hook(output_of(h + "mlp_out")),
            block.register_forward_hook(output_of(h + "out")),
        ]

    eager = modeling_gpt2.eager_attention_forward
    functional = torch.nn.functional
    softmax = functional.softmax

    def recording_attention(module, query, key, value, attention_mask, **kwargs):
        name = f"h{module.layer_idx}"
        rec.update({name + ".q": query, name + ".k": key, name + ".v": value})

        def recording_softmax(x, *args, **kw):
            rec[name + ".attn_scores"] = x
            return softmax(x, *args, **kw)

        functional.softmax = recording_softmax  # ty: ignore[invalid-assignment] (records, then calls torch's own)
        try:
            out, weights = eager(module, query, key, value, attention_mask, **kwargs)
        finally:
            functional.softmax = softmax
        rec[name + ".attn_probs"] = weights
        return out, weights

    if model.config._attn_implementation != "eager":
        raise ReferencesError(f"transformers chose {model.config._attn_implementation!r} attention, not eager")
    modeling_gpt2.eager_attention_forward = recording_attention  # ty: ignore[invalid-assignment] (wraps transformers' own)
    try:
        with torch.no_grad():
            ids, kwargs = _inputs(case)
            rec["logits"] = model(ids, **kwargs).logits
    finally:
        modeling_gpt2.eager_attention_forward = eager
        for hook in hooks:
            hook.remove()
    expected = checkpoint_names(model.config.n_layer)
    if sorted(rec) != sorted(expected):
        missing, extra = sorted(set(expected) - set(rec)), sorted(set(rec) - set(expected))
        raise ReferencesError(
            f"capturing from transformers {modeling_gpt2.__name__} missed {missing} / found {extra}: "
            "its GPT-2 modules changed; update gpt2core.verification.capture"
        )
    # each torch tensor is dropped once copied, so the case is held about once, not twice
    return {name: tensor_to_numpy(rec.pop(name)) for name in expected}


def tensor_to_numpy(tensor) -> np.ndarray:
    """The tensor as a C-contiguous array; bfloat16 (which NumPy lacks) as float32, exactly. It shares the tensor's
    memory where it can (a finished forward pass's outputs: nothing writes to them again), which keeps the tensor
    alive: a copy of a 1024-position case's checkpoints (4.2 GB in float64) took 2.6 s."""
    import torch

    tensor = tensor.detach()
    return np.ascontiguousarray((tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy())


def capture_greedy(model_dir, case, dtype, max_new_tokens: int) -> np.ndarray:
    """transformers' `generate(do_sample=False)` on the case: ids [B, T + n], n <= max_new_tokens (fewer when
    every row has produced end-of-text; a row that ended is padded with it, pad_token_id = eos_token_id)."""
    import torch

    model = hf_model(model_dir, dtype)
    ids = torch.tensor(case.input_ids)
    mask = torch.ones_like(ids) if case.attention_mask is None else torch.tensor(case.attention_mask)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=model.config.eos_token_id)  # fmt: skip
    return out.numpy().astype(np.int64)


def capture_sampling(model_dir, case, dtype, settings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`sample_with_transformers` on the case, with transformers' model for model_dir in dtype."""
    return sample_with_transformers(hf_model(model_dir, dtype), case.input_ids, case.attention_mask, settings)


def sample_with_transformers(model, input_ids, attention_mask, settings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """transformers' `generate(do_sample=True)` with settings (a sampling.SamplingSettings), seeded with
    torch.manual_seed(settings.seed), on input_ids [B, T] (attention_mask [B, T], left padding, or None):
    (ids [B, T + n], scores [n, B, V], raw logits [n, B, V]), both float32 as transformers processes them.
    Every step is run and every row keeps sampling: end-of-text stops nothing (eos_token_id=None; min_new_tokens
    would add a processor that changes the scores), so a replay feeds exactly the sampled ids."""
    import torch

    ids = torch.tensor(input_ids)
    mask = torch.ones_like(ids) if attention_mask is None else torch.tensor(attention_mask)
    torch.manual_seed(settings.seed)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=settings.max_new_tokens, do_sample=True,
                             temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p,
                             output_scores=True, output_logits=True, return_dict_in_generate=True,
                             eos_token_id=None, pad_token_id=model.config.eos_token_id)  # fmt: skip
    scores = torch.stack(out.scores).numpy()
    logits = torch.stack(out.logits).numpy()
    if scores.dtype != np.float32 or logits.dtype != np.float32 or scores.shape != logits.shape:
        raise ReferencesError(f"transformers' generate returned scores {scores.dtype} {list(scores.shape)} and logits "
                              f"{logits.dtype} {list(logits.shape)}; gpt2core.verification.capture expects float32 pairs")  # fmt: skip
    return out.sequences.numpy().astype(np.int64), scores, logits
