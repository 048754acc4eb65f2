"""A whole block against transformers' GPT2Block, and a whole small model against GPT2LMHeadModel (the
conformance suite's differential test), on random configs."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from support.compare import assert_close
from support.random_models import engine_from_hf, hf_random_model
from support.strategies import DTYPES, INIT_STDS, SEEDS, float_arrays, gpt2_configs
from gpt2core.verification.tolerances import OP_TOL, scaled_atol

from gpt2core.engine import ops
from gpt2core.engine.model import transformer_block


def check(name, got, ref):
    assert_close(name, got, ref, atol=scaled_atol(OP_TOL, ref))


@given(cfg=gpt2_configs(max_layers=1), dtype=DTYPES, seed=SEEDS, std=INIT_STDS, data=st.data())
def test_block_matches_gpt2block(cfg, dtype, seed, std, data):
    hf = hf_random_model(cfg, seed % 2**31, std, dtype)
    model = engine_from_hf(hf, dtype)
    B, T = data.draw(st.integers(1, 3)), data.draw(st.integers(1, min(12, cfg["n_positions"])))
    x = data.draw(float_arrays((B, T, cfg["n_embd"]), dtype, 1.0), label="x")
    allowed = ops.causal_mask(T, T)
    # GPT2Block takes the additive 4D mask transformers' eager attention uses: 0 or the dtype's minimum
    additive = torch.zeros(T, T, dtype=hf.dtype).masked_fill(~torch.from_numpy(allowed), torch.finfo(hf.dtype).min)
    with torch.no_grad():
        ref = hf.transformer.h[0](torch.from_numpy(x), attention_mask=additive[None, None]).numpy()
    got = transformer_block(x, model.params.blocks[0], cfg["n_head"], cfg["layer_norm_epsilon"],
                            allowed[None, None], None, 0, None)  # fmt: skip
    check(f"block out B,T={[B, T]} cfg={cfg}", got, ref)


# The whole model against transformers on drawn configs, weights and inputs: the conformance suite's
# differential test, run here on gpt2core's engine (setup.cfg's gpt2core_subject); every checkpoint compared.
from gpt2core.conformance.test_differential import test_drawn_model_matches_transformers  # noqa: E402,F401
