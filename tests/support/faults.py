"""Named faults injected into the engine without editing its source: each swaps one function.

Set GPT2CORE_FAULT=<name> and tests/conftest.py injects it for the whole run, so a suite runs against
the broken engine (`GPT2CORE_FAULT=no_causal_mask pytest tests/property` must fail); inside a test, use
the context manager `inject(name)`.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from gpt2core import ops

_original = {name: getattr(ops, name) for name in ("attention_scores", "causal_mask", "gelu", "softmax", "layer_norm")}


def _scores_scaled(scale_of_d):
    def attention_scores(q, k, allowed):
        scores = (q @ k.swapaxes(-1, -2)) * scale_of_d(q.shape[-1])
        return scores if allowed is None else np.where(allowed, scores, np.finfo(scores.dtype).min)

    return attention_scores


FAULTS = {
    # attention scale 1/d instead of 1/sqrt(d)
    "scale_1_over_d": ("attention_scores", _scores_scaled(lambda d: 1.0 / d)),
    # no scaling at all
    "no_scale": ("attention_scores", _scores_scaled(lambda d: 1.0)),
    # every key visible: no causal mask
    "no_causal_mask": ("causal_mask", lambda t, s: np.ones((t, s), dtype=bool)),
    # one future position visible
    "mask_off_by_one": ("causal_mask", lambda t, s: np.tri(t, s, k=s - t + 1, dtype=bool)),
    # exact erf GELU instead of GPT-2's tanh form
    "exact_gelu": ("gelu", lambda x: 0.5 * x * (1.0 + np.vectorize(__import__("math").erf, otypes=[x.dtype])(x / np.sqrt(2.0).astype(x.dtype)))),
}


@contextlib.contextmanager
def inject(name: str):
    attr, replacement = FAULTS[name]
    setattr(ops, attr, replacement)
    try:
        yield
    finally:
        setattr(ops, attr, _original[attr])


def inject_from_environment() -> str | None:
    """Inject the fault GPT2CORE_FAULT names (for the whole process); return its name."""
    name = os.environ.get("GPT2CORE_FAULT")
    if name:
        if name not in FAULTS:
            raise KeyError(f"GPT2CORE_FAULT={name!r} is not a known fault: {', '.join(FAULTS)}")
        attr, replacement = FAULTS[name]
        setattr(ops, attr, replacement)
    return name
