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


