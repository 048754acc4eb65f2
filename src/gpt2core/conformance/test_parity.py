"""Parity: every checkpoint of every layer of the built-in cases against transformers' own forward pass,
in every mode the subject offers (chained; isolated with "stages"; cached with "decode"; greedy generation
with "generate"; sampled generation with "sample"), per model, dtype, case and checkpoint."""

from __future__ import annotations

import pytest

from ..verification.sampling import compare_sampled
from ..verification.verify import budgets_of, compare_cached, compare_greedy, first_divergence
from .plugin import skip_for


@pytest.mark.parity
def test_checkpoint(gpt2core_session, gpt2core_parity_point):
    model, dtype, mode, case_name, name = gpt2core_parity_point
    subject = gpt2core_session.subject(model, dtype)
    if mode == "isolated" and "stages" not in subject.capabilities:
        skip_for("'stages' (the isolated mode)")
    result = gpt2core_session.parity(model, dtype, mode)[case_name]
    if "skip" in result:
        skip_for(f"the case: {result['skip']}")
    found = [c for c in result["comparisons"] if c.name == name]
    if not found:
        skip_for(f"checkpoint {name.split('.')[-1]} (not provided)")
    (c,) = found
    first = first_divergence(result["comparisons"])
    assert c.ok, f"{model} {dtype} {mode} case {case_name}: {c.message()}\n  the case's first diverging checkpoint: {(first or c).message()}"


@pytest.mark.parity
def test_cached_decoding(gpt2core_session, gpt2core_parity_case):
    """Prefill, then decode one position at a time with the subject's cache (after an unrelated request):
    every checkpoint of every step equals transformers' full pass at that position."""
    model, dtype, case_name = gpt2core_parity_case
    subject = gpt2core_session.subject(model, dtype)
    if "decode" not in subject.capabilities:
        skip_for("'decode' (cached decoding)")
    refs = gpt2core_session.references(model, dtype)
    case = refs.case(case_name)
    if case.input_ids.shape[1] < 2:
        pytest.skip("one position: nothing to decode after the prefill")
    provided = [n for n in refs.checkpoint_names if n in getattr(subject, "provides", refs.checkpoint_names)]
    budgets = budgets_of(subject, refs)
    comps = compare_cached(subject, case, provided, refs.config["vocab_size"], tol=budgets.tol,
                           budget=lambda name: budgets.atol(case_name, name))  # fmt: skip
    assert comps, "no decoding step was compared"
    bad = [c.message() for c in comps if not c.ok]
    assert not bad, f"{model} {dtype} case {case_name}: {len(bad)} of {len(comps)} comparisons fail:\n" + "\n".join(bad[:10])


@pytest.mark.parity
def test_greedy_generation(gpt2core_session, gpt2core_parity_set):
    """The greedy continuation equals transformers' generate, token for token, on every case it was recorded for."""
    model, dtype = gpt2core_parity_set
    subject = gpt2core_session.subject(model, dtype)
    if "generate" not in subject.capabilities:
        skip_for("'generate' (greedy generation)")
    cases = [c for c in gpt2core_session.references(model, dtype).cases if c.greedy is not None]
    assert cases, "the reference set records no greedy continuation"
    bad = [r["message"] for r in (compare_greedy(subject, c) for c in cases) if not r["ok"]]
    assert not bad, "\n".join(bad)


@pytest.mark.parity
def test_sampled_generation(gpt2core_session, gpt2core_parity_set):
    """Along transformers' sampled path, the processed scores of every step equal transformers'."""
    model, dtype = gpt2core_parity_set
    subject = gpt2core_session.subject(model, dtype)
    if "sample" not in subject.capabilities:
        skip_for("'sample' (sampled generation)")
    refs = gpt2core_session.references(model, dtype)
    cases = [c for c in refs.cases if c.sampling is not None]
    assert cases, "the reference set records no sampled generation"
    budgets = budgets_of(subject, refs)
    comps = [c for case in cases for c in compare_sampled(subject, case, dtype, budgets.atol(case.name, "logits"))]
    bad = [c.message() for c in comps if not c.ok]
    assert comps and not bad, "\n".join(bad[:10])
