"""Each NumPy op of the engine against the matching torch op on hypothesis-drawn shapes and values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from support.compare import assert_close
from support.strategies import DTYPES, float_arrays, head_shapes, near_constant_rows
from gpt2core.verification.tolerances import OP_TOL, scaled_atol

from gpt2core.engine import ops


def check(name, got, ref):
    ref = ref.numpy() if isinstance(ref, torch.Tensor) else ref
    assert_close(name, got, ref, atol=scaled_atol(OP_TOL, ref))


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def eager_scores(q, k, allowed):
    """transformers' eager scores in torch: q k^T * D**-0.5 plus an additive mask holding the dtype's minimum
    where a key is not allowed."""
    minimum = torch.finfo(T(q).dtype).min
    additive = torch.zeros(allowed.shape, dtype=T(q).dtype).masked_fill(~torch.from_numpy(allowed), minimum)
    return torch.matmul(T(q), T(k).transpose(-1, -2)) * q.shape[-1] ** -0.5 + additive


def check_attention_against_eager(name, q, k, v, allowed, block):
    """ops.attention's output and recorded full scores and probs vs transformers' eager recipe (softmax, then v)."""
    record: dict = {}
    got = ops.attention(q, k, v, allowed, block=block, record=record)
    scores = eager_scores(q, k, allowed)
    probs = torch.softmax(scores, dim=-1)
    check(f"{name}: scores", record["scores"], scores)
    check(f"{name}: probs", record["probs"], probs)
    check(f"{name}: attention", got, torch.matmul(probs, T(v)))


shapes_2d_3d = st.lists(st.integers(1, 8), min_size=1, max_size=2).map(tuple)


@given(dtype=DTYPES, lead=shapes_2d_3d, width=st.integers(1, 96), data=st.data())
def test_layer_norm_matches_torch(dtype, lead, width, data):
    shape = lead + (width,)
    x = data.draw(st.one_of(float_arrays(shape, dtype), near_constant_rows(shape, dtype)), label="x")
    g, b = data.draw(float_arrays((width,), dtype, 1.0)), data.draw(float_arrays((width,), dtype, 1.0))
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 1e-12]))
    ref = F.layer_norm(T(x), (width,), T(g), T(b), eps).numpy()
    # rounding of x - mean is amplified by 1/sqrt(var + eps): scale the tolerance by that condition number
    cond = max(1.0, float(np.abs(x).max() / np.sqrt(x.astype(np.float64).var(-1) + eps).min()))
    atol = scaled_atol(OP_TOL, ref) * cond
    assert_close(f"layer_norm{list(shape)} eps={eps} cond={cond:.1e}", ops.layer_norm(x, g, b, eps), ref, atol=atol)


@given(dtype=DTYPES, lead=shapes_2d_3d, width=st.integers(1, 64), data=st.data())
def test_gelu_matches_torch_tanh_gelu(dtype, lead, width, data):
    x = data.draw(float_arrays(lead + (width,), dtype), label="x")
    check(f"gelu{list(x.shape)}", ops.gelu(x), F.gelu(T(x), approximate="tanh"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, chunk", [((3, 50_001), None), ((5, 9), 7), ((4, 3), 5)])
def test_gelu_over_several_chunks_and_a_transposed_input(dtype, shape, chunk, monkeypatch):
    """gelu works GELU_CHUNK elements at a time: several chunks, a shorter last one, a non-contiguous input."""
    if chunk is not None:
        monkeypatch.setattr(ops, "GELU_CHUNK", chunk)
    x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(dtype)
    for name, a in (("contiguous", x), ("transposed", x.T)):
        got = ops.gelu(a)
        assert got.shape == a.shape and got.dtype == a.dtype
        check(f"gelu{list(a.shape)} {name}, chunks of {ops.GELU_CHUNK}", got, F.gelu(T(a), approximate="tanh"))


@given(dtype=DTYPES, lead=shapes_2d_3d, width=st.integers(1, 64), data=st.data())
def test_softmax_matches_torch(dtype, lead, width, data):
    x = data.draw(float_arrays(lead + (width,), dtype), label="x")
    check(f"softmax{list(x.shape)}", ops.softmax(x), torch.softmax(T(x), dim=-1))


@given(dtype=DTYPES, rows=st.integers(1, 6), width=st.integers(2, 40), data=st.data())
def test_softmax_with_masked_entries_matches_torch(dtype, rows, width, data):
    x = data.draw(float_arrays((rows, width), dtype), label="x")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    masked = rng.random((rows, width)) < 0.5
    masked[np.arange(rows), rng.integers(0, width, rows)] = False  # every row keeps one entry
    x = np.where(masked, -np.inf, x).astype(dtype)
    got = ops.softmax(x)
    check(f"softmax masked {[rows, width]}", got, torch.softmax(T(x), dim=-1))
    assert (got[masked] == 0).all()


@given(dtype=DTYPES, lead=shapes_2d_3d, n_in=st.integers(1, 64), n_out=st.integers(1, 64), data=st.data())
def test_linear_matches_torch_conv1d_layout(dtype, lead, n_in, n_out, data):
    x = data.draw(float_arrays(lead + (n_in,), dtype), label="x")
    w = data.draw(float_arrays((n_in, n_out), dtype, 0.5), label="w")  # Conv1D stores [in, out]
    b = data.draw(float_arrays((n_out,), dtype, 1.0), label="b")
    check(f"linear{list(x.shape)}x{[n_in, n_out]}", ops.linear(x, w, b), F.linear(T(x), T(w).T, T(b)))


@given(dtype=DTYPES, bhtd=head_shapes(), data=st.data())
def test_split_and_merge_heads_match_torch_view_transpose(dtype, bhtd, data):
    B, H, T_, D = bhtd
    x = data.draw(float_arrays((B, T_, H * D), dtype), label="x")
    ref = T(x).view(B, T_, H, D).transpose(1, 2)  # as GPT2Attention splits heads
    split = ops.split_heads(x, H)
    check(f"split_heads{[B, T_, H * D]}", split, ref)
    np.testing.assert_array_equal(ops.merge_heads(split), x)


block_sizes = st.integers(1, 13)  # ops.attention's block size: from one query per block to all of them


@given(dtype=DTYPES, bhtd=head_shapes(), extra_keys=st.integers(0, 5), block=block_sizes, data=st.data())
def test_attention_is_causal_sdpa(dtype, bhtd, extra_keys, block, data):
    """Causal attention vs F.scaled_dot_product_attention; with extra_keys the queries are the last T of S
    positions (the cache case), compared with an explicit boolean mask."""
    B, H, T_, D = bhtd
    S = T_ + extra_keys
    q = data.draw(float_arrays((B, H, T_, D), dtype, 1.0), label="q")
    k = data.draw(float_arrays((B, H, S, D), dtype, 1.0), label="k")
    v = data.draw(float_arrays((B, H, S, D), dtype, 1.0), label="v")
    allowed = ops.causal_mask(T_, S)
    if extra_keys == 0:
        ref = F.scaled_dot_product_attention(T(q), T(k), T(v), is_causal=True)
    else:
        torch_mask = torch.ones(S, S, dtype=torch.bool).tril()[-T_:]
        ref = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=torch_mask)
    got = ops.attention(q, k, v, allowed[None, None], block=block)
    check(f"attention B,H,T,S,D={[B, H, T_, S, D]} block={block}", got, ref)


@given(dtype=DTYPES, bhtd=head_shapes(), block=block_sizes, data=st.data())
def test_attention_with_padding_mask_matches_sdpa(dtype, bhtd, block, data):
    from support.strategies import left_padding_masks

    B, H, T_, D = bhtd
    q, k, v = (data.draw(float_arrays((B, H, T_, D), dtype, 1.0), label=n) for n in "qkv")
    pad = data.draw(left_padding_masks(B, T_), label="mask").astype(bool)
    allowed = ops.causal_mask(T_, T_)[None, None] & pad[:, None, None, :]
    ref = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=torch.from_numpy(allowed))
    rows = np.broadcast_to(allowed.any(-1, keepdims=True), (B, H, T_, D))  # torch gives NaN for empty rows
    got = ops.attention(q, k, v, allowed, block=block)
    check(f"attention padded B,H,T,D={[B, H, T_, D]} block={block}", got[rows], ref.numpy()[rows])


@given(dtype=DTYPES, bhtd=head_shapes(), extra_keys=st.integers(0, 4), block=block_sizes, causal=st.booleans(), data=st.data())
def test_attention_with_any_mask_matches_eager_and_records_full_scores(dtype, bhtd, extra_keys, block, causal, data):
    """Causal with left padding (blocks leave keys out), or any boolean mask (rows with no allowed key too),
    vs transformers' eager recipe: scores plus an additive dtype-minimum mask, softmax, then v. The recorded
    scores and probs are the full [B, H, T, S] ones, and a query with no allowed key attends uniformly to all S keys."""
    from support.strategies import left_padding_masks

    B, H, T_, D = bhtd
    S = T_ + extra_keys
    q = data.draw(float_arrays((B, H, T_, D), dtype, 1.0), label="q")
    k, v = (data.draw(float_arrays((B, H, S, D), dtype, 1.0), label=n) for n in "kv")
    if causal:
        pad = data.draw(left_padding_masks(B, S), label="mask").astype(bool)
        allowed = ops.causal_mask(T_, S)[None, None] & pad[:, None, None, :]
    else:
        allowed = data.draw(st.lists(st.booleans(), min_size=B * T_ * S, max_size=B * T_ * S), label="allowed")
        allowed = np.array(allowed).reshape(B, 1, T_, S)
    check_attention_against_eager(f"B,H,T,S,D={[B, H, T_, S, D]} block={block}", q, k, v, allowed, block)


@given(dtype=DTYPES, bhtd=head_shapes(), extra_keys=st.integers(0, 4), block=block_sizes, data=st.data())
def test_attention_blocks_never_read_the_keys_after_their_last_query(dtype, bhtd, extra_keys, block, data):
    """Under the causal mask a block of queries never touches a later key: with NaN values at the last key,
    every query outside the last block stays finite (a block reading all S keys would give 0 * NaN = NaN)."""
    B, H, T_, D = bhtd
    S = T_ + extra_keys
    q = data.draw(float_arrays((B, H, T_, D), dtype, 1.0), label="q")
    k, v = (data.draw(float_arrays((B, H, S, D), dtype, 1.0), label=n) for n in "kv")
    v[:, :, -1] = np.nan
    got = ops.attention(q, k, v, ops.causal_mask(T_, S)[None, None], block=block)
    last_block_start = (T_ - 1) // block * block
    assert np.isfinite(got[:, :, :last_block_start]).all(), f"B,H,T,S,D={[B, H, T_, S, D]} block={block}: NaN leaked"
    assert np.isnan(got[:, :, -1]).all()  # the last query does attend to the last key


@given(dtype=DTYPES, bhtd=head_shapes(), extra_keys=st.integers(0, 4), data=st.data())
def test_attention_scores_match_transformers_eager_masking(dtype, bhtd, extra_keys, data):
    """Scores as transformers' eager attention makes them: q k^T * D**-0.5 plus an additive mask holding the
    dtype's minimum where a key is not allowed. Masked entries must equal that minimum exactly."""
    from support.strategies import left_padding_masks

    from gpt2core.verification.compare import compare

    B, H, T_, D = bhtd
    S = T_ + extra_keys
    q = data.draw(float_arrays((B, H, T_, D), dtype, 1.0), label="q")
    k = data.draw(float_arrays((B, H, S, D), dtype, 1.0), label="k")
    pad = data.draw(left_padding_masks(B, S), label="mask").astype(bool)
    allowed = ops.causal_mask(T_, S)[None, None] & pad[:, None, None, :]
    ref = eager_scores(q, k, allowed).numpy()
    # A score's rounding follows the terms its dot product sums, sum |q_e k_e| / sqrt(D), not the score: one that
    # cancels to 0.005 from terms near 1 came out 1.0e-7 from torch's in float32 (margin 1.9 of OP_TOL times the
    # largest score, on one BLAS thread), a correct sum in another order. A wrong scale or mask still moves a score
    # by a fraction of itself (and masked entries are compared exactly).
    terms = float((np.abs(q).astype(np.float64) @ np.abs(k).astype(np.float64).swapaxes(-1, -2)).max()) / np.sqrt(D)
    c = compare(f"attention_scores B,H,T,S,D={[B, H, T_, S, D]}", ops.attention_scores(q, k, allowed), ref, OP_TOL,
                at_least=OP_TOL[np.dtype(dtype)] * terms)  # fmt: skip
    assert c.ok, c.message()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "case",
    ["causal, left padding", "a padding query beside one that sees every earlier key"],
)
def test_attention_blocks_that_leave_keys_out(dtype, case):
    """Fixed cases that always run (hypothesis' few examples under mutmut may miss them): 5 queries over 6
    positions in blocks of 2, where the first blocks leave keys out; and a block whose first query has no allowed key
    while its second allows every key up to the block's end, which must keep all 4 keys for the first query."""
    rng = np.random.default_rng(0)
    if case.startswith("causal"):
        B, T_, S = 2, 5, 6
        pad = np.array([[0, 0, 1, 1, 1, 1], [1] * 6], dtype=bool)
        allowed = ops.causal_mask(T_, S)[None, None] & pad[:, None, None, :]
    else:
        B, T_, S = 1, 4, 4
        allowed = np.zeros((1, 1, 4, 4), dtype=bool)
        allowed[0, 0, 1, :2] = allowed[0, 0, 2:] = True  # query 0 sees nothing, query 1 keys 0-1
    q, k, v = (rng.standard_normal((B, 2, n, 3)).astype(dtype) for n in (T_, S, S))
    check_attention_against_eager(case, q, k, v, allowed, block=2)
