"""Differential property tests: hypothesis draws a small GPT-2 (head count, head size, layers, vocabulary,
epsilon, n_positions), its weights (GPT-2's initialisation, random biases and LayerNorm, the stress model's
sharp attention and outlier channels) and a batch of inputs (lengths, rows, left padding); transformers
writes the model directory and captures every checkpoint; the engine runs the same inputs and every
checkpoint it provides is compared. A failure is shrunk to the smallest config and input that diverge and
printed with a `gpt2core verify` command that reproduces it outside pytest.

A subject reached through a command gets each example's inputs in one batch: one process per example.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .examples import Coverage, differential
from .plugin import skip_for
from .strategies import drawn_configs, inputs, weights

INPUTS_PER_EXAMPLE = {"python": 2, "command": 4}  # a command's examples are batched: one process runs them all


@pytest.mark.property
def test_drawn_model_matches_transformers(gpt2core_session, gpt2core_drawn_dtype):
    target = gpt2core_session.target
    if not target.runs_new_inputs:
        skip_for("new inputs (a dump directory holds the runs of one reference set)")
    per_example = INPUTS_PER_EXAMPLE.get(target.kind, 1)
    limits = gpt2core_session.input_limits(gpt2core_drawn_dtype)  # draw only what the engine runs
    rows = 3 if limits["batch"] else 1
    coverage = Coverage()

    @gpt2core_session.hypothesis_settings()
    @given(data=st.data())
    def drawn_model_matches_transformers(data):
        cfg = data.draw(drawn_configs(gpt2core_drawn_dtype), label="config")
        w = data.draw(weights(gpt2core_drawn_dtype), label="weights")  # float32: no sharp attention (see weights)
        one = inputs(cfg["vocab_size"], cfg["n_positions"], max_batch=rows, padding=limits["padding"])
        drawn = data.draw(st.lists(one, min_size=1, max_size=per_example), label="inputs")
        with coverage.example():
            differential(gpt2core_session, cfg, w, drawn, gpt2core_drawn_dtype)

    drawn_model_matches_transformers()
    coverage.check("the differential test")
