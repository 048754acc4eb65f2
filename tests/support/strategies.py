"""Hypothesis strategies shared by every property test (in the spirit of data-apis/array-api-tests).

Everything is drawn as plain Python/NumPy values; tests convert to torch themselves.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
SEEDS = st.integers(0, 2**32 - 1)


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


@st.composite
def left_padding_masks(draw, batch, seq):
    """[batch, seq] 0/1 masks, padding on the left, every row with at least one token."""
    lengths = draw(st.lists(st.integers(1, seq), min_size=batch, max_size=batch))
    return np.array([[0] * (seq - n) + [1] * n for n in lengths], dtype=np.int64)


@st.composite
def gpt2_configs(draw, max_layers=2):
    """Small GPT-2 configs with any head count and head size (n_embd = n_head * head_dim)."""
    n_head = draw(st.integers(1, 4))
    head_dim = draw(st.sampled_from([1, 2, 4, 8, 16]))
    vocab = draw(st.integers(8, 300))
    return dict(
        vocab_size=vocab,
        n_positions=draw(st.integers(8, 40)),
        n_embd=n_head * head_dim,
        n_head=n_head,
        n_layer=draw(st.integers(1, max_layers)),
        layer_norm_epsilon=draw(st.sampled_from([1e-5, 1e-6, 1e-3])),
        bos_token_id=vocab - 1,
        eos_token_id=vocab - 1,
    )


@st.composite
def token_ids(draw, vocab_size, batch, seq):
    rng = np.random.default_rng(draw(SEEDS))
    return rng.integers(0, vocab_size, (batch, seq))


# initializer std: 0.02 is GPT-2's (nearly uniform attention); larger values make attention sharp
INIT_STDS = st.sampled_from([0.02, 0.2, 0.5])
