"""Invariants of any engine, no reference needed (gpt2core.conformance.invariants): causality, batch
independence, padding independence, and for an engine that decodes incrementally, cache equivalence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ..verification.cases import Case
from ..verification.reference_set import CapturedCase
from ..verification.tolerances import DRAWN_TOL
from ..verification.verify import compare_cached, positions
from .examples import Coverage, example_dir
from .invariants import Run, assert_agree, fail
from .plugin import skip_for
from .strategies import drawn_configs, token_ids, weights



def drawn_model(session, data, dtype):
    if not session.target.runs_new_inputs:
        skip_for("new inputs (a dump directory holds the runs of one reference set)")
    cfg = data.draw(drawn_configs(dtype), label="config")
    return cfg, data.draw(weights(dtype), label="weights")


@pytest.mark.invariants
def test_changing_future_tokens_never_changes_earlier_outputs(gpt2core_session, gpt2core_drawn_dtype):
    @gpt2core_session.hypothesis_settings()
    @given(data=st.data())
    def example(data):
        cfg, w = drawn_model(gpt2core_session, data, gpt2core_drawn_dtype)
        V, T = cfg["vocab_size"], data.draw(st.integers(2, min(12, cfg["n_positions"])), label="T")
        t = data.draw(st.integers(1, T - 1), label="first changed position")
        ids = data.draw(token_ids(V, data.draw(st.integers(1, rows), label="B"), T), label="ids")
        other = ids.copy()
        other[:, t:] = (ids[:, t:] + 1 + data.draw(st.integers(0, V - 2), label="shift")) % V
        with example_dir(gpt2core_session) as work, coverage.example():
            run = Run(gpt2core_session, cfg, w, [Case("a", ids), Case("b", other)], gpt2core_drawn_dtype, work)
            run.require_runs("a", "b")
            first = slice(0, t)
            pairs = [(f"{n}[positions < {t}]", positions(n, run.checkpoint("b", n), first, first), positions(n, run.checkpoint("a", n), first, first))
                     for n in run.names]  # fmt: skip
            assert_agree(pairs, f"tokens changed from position {t} on changed earlier positions", run)

    rows, coverage = 2 if gpt2core_session.input_limits(gpt2core_drawn_dtype)["batch"] else 1, Coverage()
    example()
    coverage.check("causality")


@pytest.mark.invariants
def test_a_sequence_does_not_depend_on_its_batch_neighbours(gpt2core_session, gpt2core_drawn_dtype):
    @gpt2core_session.hypothesis_settings()
    @given(data=st.data())
    def example(data):
        cfg, w = drawn_model(gpt2core_session, data, gpt2core_drawn_dtype)
        B, T = data.draw(st.integers(2, 3), label="B"), data.draw(st.integers(1, min(10, cfg["n_positions"])), label="T")
        ids = data.draw(token_ids(cfg["vocab_size"], B, T), label="ids")
        cases = [Case("batch", ids)] + [Case(f"row{b}", ids[b : b + 1]) for b in range(B)]
        with example_dir(gpt2core_session) as work, coverage.example():
            run = Run(gpt2core_session, cfg, w, cases, gpt2core_drawn_dtype, work)
            run.require_runs("batch", "row0")
            pairs = [(f"{n}[row {b} of {B}]", run.checkpoint("batch", n)[b : b + 1], run.checkpoint(f"row{b}", n))
                     for b in range(B) for n in run.names]  # fmt: skip
            assert_agree(pairs, "a row of a batch differs from the same row run alone", run)

    if not gpt2core_session.input_limits(gpt2core_drawn_dtype)["batch"]:
        skip_for("batches (the engine runs one row at a time)")
    coverage = Coverage()
    example()
    coverage.check("batch independence")


@pytest.mark.invariants
def test_left_padding_with_its_mask_gives_the_unpadded_result(gpt2core_session, gpt2core_drawn_dtype):
    @gpt2core_session.hypothesis_settings()
    @given(data=st.data())
    def example(data):
        cfg, w = drawn_model(gpt2core_session, data, gpt2core_drawn_dtype)
        n = data.draw(st.integers(1, min(8, cfg["n_positions"] - 1)), label="tokens")
        pad = data.draw(st.integers(1, min(8, cfg["n_positions"] - n)), label="padding")
        ids = data.draw(token_ids(cfg["vocab_size"], 1, n), label="ids")
        filler = data.draw(token_ids(cfg["vocab_size"], 1, pad), label="padding ids")
        padded = Case("padded", np.concatenate([filler, ids], 1), np.array([[0] * pad + [1] * n]))
        with example_dir(gpt2core_session) as work, coverage.example():
            run = Run(gpt2core_session, cfg, w, [padded, Case("alone", ids)], gpt2core_drawn_dtype, work)
            run.require_runs("padded", "alone")
            tokens = slice(pad, None)
            pairs = [(f"{n_}[after {pad} padding]", positions(n_, run.checkpoint("padded", n_), tokens, tokens), run.checkpoint("alone", n_))
                     for n_ in run.names]  # fmt: skip
            assert_agree(pairs, f"{pad} positions of left padding changed the tokens' outputs", run)

    if not gpt2core_session.input_limits(gpt2core_drawn_dtype)["padding"]:
        skip_for("padding (the engine runs no padded batch)")
    coverage = Coverage()
    example()
    coverage.check("padding independence")


@pytest.mark.invariants
def test_cached_decoding_equals_the_full_pass(gpt2core_session, gpt2core_drawn_dtype):
    """Prefill, then one position at a time with the subject's cache, after an unrelated request: each step
    equals the subject's own full pass at that position (gpt2core.verification.verify.compare_cached)."""
    @gpt2core_session.hypothesis_settings()
    @given(data=st.data())
    def example(data):
        if gpt2core_session.target.kind != "python":
            skip_for("'decode' at a drawn split (an engine reached through files decodes from the split its reference "
                     "set gives: the parity suite's cached tests verify it)")
        cfg, w = drawn_model(gpt2core_session, data, gpt2core_drawn_dtype)
        B, T = data.draw(st.integers(1, rows), label="B"), data.draw(st.integers(2, min(12, cfg["n_positions"])), label="T")
        ids = data.draw(token_ids(cfg["vocab_size"], B, T), label="ids")
        split = data.draw(st.integers(1, T - 1), label="prefill positions")
        with example_dir(gpt2core_session) as work:
            run = Run(gpt2core_session, cfg, w, [Case("c", ids)], gpt2core_drawn_dtype, work)
            if "decode" not in run.subject.capabilities:
                skip_for("'decode' (cached decoding)")
            full = CapturedCase(run.case("c"), {n: run.checkpoint("c", n) for n in run.names})
            comps = compare_cached(run.subject, full, run.names, cfg["vocab_size"], split=split, tol=DRAWN_TOL)
            bad = [c.message() for c in comps if not c.ok]
            if not comps or bad:
                fail(run, f"cached decoding from position {split}: {len(bad)} of {len(comps)} comparisons differ from the "
                          "full pass:\n" + "\n".join(bad[:8]))  # fmt: skip

    rows = 2 if gpt2core_session.target.kind == "python" and gpt2core_session.input_limits(gpt2core_drawn_dtype)["batch"] else 1
    example()