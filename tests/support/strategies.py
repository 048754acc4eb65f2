"""Hypothesis strategies shared by every property test (in the spirit of data-apis/array-api-tests).

Everything is drawn as plain Python/NumPy values; tests convert to torch themselves.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# drawn GPT-2 configs, token ids, padding masks and initializer stds: the conformance suite's, one definition
from gpt2core.conformance.strategies import INIT_STDS, SEEDS, gpt2_configs, left_padding_masks, token_ids  # noqa: F401

DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


@st.composite
def float_arrays(draw, shape, dtype, scale=None):
    """Standard-normal arrays times a scale drawn over 1e-2..1e2 (large magnitudes included), from a seed:
    hypothesis shrinks the seed and the scale, not millions of elements."""
    scale = draw(st.sampled_from([1e-2, 1.0, 10.0, 100.0])) if scale is None else scale
    rng = np.random.default_rng(draw(SEEDS))
    return (rng.standard_normal(shape) * scale).astype(dtype)


@st.composite
def near_constant_rows(draw, shape, dtype):
    """Rows c + small noise: LayerNorm's hardest case (variance near epsilon)."""
    rng = np.random.default_rng(draw(SEEDS))
    offset = rng.uniform(-3, 3, shape[:-1] + (1,))
    noise = draw(st.sampled_from([1e-1, 1e-2, 1e-3]))
    return (offset + noise * rng.standard_normal(shape)).astype(dtype)


@st.composite
def head_shapes(draw, max_batch=3, max_heads=4, max_head_dim=32, max_seq=12):
    """(B, H, T, D) for attention."""
    return (
        draw(st.integers(1, max_batch)),
        draw(st.integers(1, max_heads)),
        draw(st.integers(1, max_seq)),
        draw(st.sampled_from([1, 2, 3, 8, 16, max_head_dim])),
    )




# -- what a verification run's verdict is drawn from (gpt2core.verification.verdict.judge's arguments) --

VERDICT_MODES = ("chained", "isolated", "cached", "generate", "sampled")
VERDICT_CHECKPOINTS = ("embeddings", "h0.attn_probs", "h0.mlp_out", "h1.ln_1", "ln_f", "logits")
VERDICT_CASES = ("one_token", "hello", "padded_batch")


@st.composite
def verdict_evidence(draw):
    """judge()'s keyword arguments: any mix of failures (in any mode and case), checkpoints not provided,
    cases and modes not run, waivers, files no comparison read, logits never compared, a distribution out of
    its budget, under either --require."""
    provided = draw(st.lists(st.sampled_from(VERDICT_CHECKPOINTS), unique=True))
    not_run = draw(st.lists(st.sampled_from(VERDICT_CASES), unique=True))
    ran = draw(st.fixed_dictionaries({mode: st.booleans() for mode in VERDICT_MODES}))
    failures = draw(st.lists(st.fixed_dictionaries({
        "mode": st.sampled_from(VERDICT_MODES), "case": st.sampled_from(VERDICT_CASES),
        "name": st.sampled_from(VERDICT_CHECKPOINTS), "message": st.text("abc <>&", max_size=8)}), max_size=3))  # fmt: skip
    return {
        "require": draw(st.sampled_from(["offered", "all"])),
        "checkpoints": VERDICT_CHECKPOINTS,
        "provided": provided,
        "cases_not_run": {case: f"the map says so ({case})" for case in not_run},
        "modes": {mode: {"ran": r, "why": None if r else f"{mode} not offered"} for mode, r in ran.items()},
        "failures": failures,
        "logits_compared": draw(st.booleans()),
        "distribution_ok": draw(st.sampled_from([None, True, False])),
        "distribution_why": "KL mean over its budget",
        "waived": draw(st.lists(st.sampled_from(["h0.mlp_out (chained, case hello): GELU table"]), max_size=1)),
        "files_not_read": draw(st.lists(st.sampled_from(["hello/extra.npy", "one_token/stage/x.npy"]), unique=True)),
    }
