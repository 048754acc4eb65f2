"""gpt2core.compare: what passes, what fails, and where the report says the worst element is."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2core.verification.compare import compare
from gpt2core.verification.tolerances import CHECKPOINT_TOL

F64 = np.float64
MIN = np.finfo(F64).min


def scores():
    ref = np.arange(2 * 3 * 4 * 4, dtype=F64).reshape(2, 3, 4, 4) / 10
    ref[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]] = MIN  # causal mask
    return ref


def test_worst_element_is_named_by_axis():
    ref = scores()
    got = ref.copy()
    got[1, 2, 3, 0] += 1e-3
    c = compare("h0.attn_scores", got, ref, CHECKPOINT_TOL)
    assert not c.ok and c.worst == {"batch": 1, "head": 2, "query": 3, "key": 0}
    assert c.max_abs == np.abs(got - ref)[1, 2, 3, 0] and c.max_rel == c.max_abs / 9.5
    assert c.atol == CHECKPOINT_TOL[np.dtype(F64)] * 9.5  # max |ref| over unmasked entries, not the mask value
    assert "batch 1, head 2, query 3, key 0" in c.message()


def test_a_masked_entry_must_equal_the_mask_value_exactly_and_is_located():
    ref = scores()
    got = ref.copy()
    got[0, 1, 2, 3] = -1e30  # very negative, yet not the mask value
    c = compare("h0.attn_scores", got, ref, CHECKPOINT_TOL)
    assert c.problem == f"a masked entry is not the mask value {float(MIN)!r} at batch 0, head 1, query 2, key 3"


def test_non_finite_values_are_located_in_got_and_ref():
    ref = scores()
    got = ref.copy()
    got[1, 0, 2, 1] = np.nan
    assert compare("h0.attn_scores", got, ref, CHECKPOINT_TOL).problem == (
        "non-finite value at batch 1, head 0, query 2, key 1"
    )
    bad_ref = ref.copy()
    bad_ref[0, 2, 1, 0] = np.inf
    assert compare("h0.attn_scores", ref, bad_ref, CHECKPOINT_TOL).problem == (
        "the reference has non-finite values, first at batch 0, head 2, query 1, key 0"
    )


def test_within_tolerance_passes_and_just_outside_fails():
    ref = np.array([[[2.0, -4.0, 1.0]]])
    atol = CHECKPOINT_TOL[np.dtype(F64)] * 4.0
    assert compare("h0.out", ref + 0.9 * atol, ref, CHECKPOINT_TOL).ok
    c = compare("h0.out", ref + np.array([[[0, 0, 1.5 * atol]]]), ref, CHECKPOINT_TOL)
    assert not c.ok and c.worst == {"batch": 0, "position": 0, "channel": 2} and abs(c.margin - 1.5) < 1e-3  # 1.0 + 6e-12 rounds


def test_report_dict_of_a_comparison_and_of_a_problem():
    ref = np.array([[[2.0, -4.0, 1.0]]])
    got = ref + np.array([[[0.0, 2e-12, 0.0]]])
    c = compare("h3.out", got, ref, CHECKPOINT_TOL)
    assert c.as_dict() == {
        "name": "h3.out", "ok": True, "shape": [1, 1, 3], "dtype": "float64", "max_abs": c.max_abs,
        "max_rel": c.max_abs / 4.0, "tolerance": 4e-12, "margin": c.max_abs / 4e-12, "layer": 3,
        "worst": {"batch": 0, "position": 0, "channel": 1}, "problem": None, "compared": 3, "excluded": 0,
        "waived": False, "waiver": None,
    }  # fmt: skip
    p = compare("h3.out", got[..., :2], ref, CHECKPOINT_TOL)
    assert p.as_dict() == {
        "name": "h3.out", "ok": False, "shape": [1, 1, 2], "dtype": "float64", "max_abs": float("inf"),
        "max_rel": float("inf"), "tolerance": 0.0, "margin": None, "layer": 3, "worst": {},
        "problem": "shape [1, 1, 2] != reference shape [1, 1, 3]", "compared": 0, "excluded": 0,
        "waived": False, "waiver": None,
    }  # fmt: skip
    assert compare("h3.out", got.astype(np.float32), ref, CHECKPOINT_TOL).as_dict()["dtype"] == "float32"
    assert compare("h3.out", [1.0], ref, CHECKPOINT_TOL).as_dict()["dtype"] == "list"
    assert compare("h3.out", [1.0], ref, CHECKPOINT_TOL).problem == "expected a NumPy array, got list"


def test_message_states_verdict_shape_and_the_layer_of_the_worst_element():
    import re

    ref = np.array([[[2.0, -4.0, 1.0]]])
    atol = CHECKPOINT_TOL[np.dtype(F64)] * 4.0
    near, far = ref + np.array([[[0, 0, 0.5 * atol]]]), ref + np.array([[[0, 0, 2 * atol]]])
    num = r"[-+.e\d]+"
    for name, got, verdict, layer in [("h3.out", near, "ok", "layer 3, "), ("ln_f", near, "ok", ""),
                                      ("h0.mlp_out", far, "EXCEEDS TOLERANCE", "layer 0, ")]:  # fmt: skip
        message = compare(name, got, ref, CHECKPOINT_TOL).message()
        pattern = (rf"{re.escape(name)}: {verdict}: shape \[1, 1, 3\] float64; max abs diff {num} \(tolerance {num}, "
                   rf"margin {num}\), max rel diff {num}; worst at {layer}batch 0, position 0, channel 2: got {num}, "
                   rf"reference 1\.0")  # fmt: skip
        assert re.fullmatch(pattern, message), message


def test_axes_come_from_the_last_name_component_before_any_step_suffix():
    from gpt2core.verification.compare import axes_of

    attention = ("batch", "head", "query", "key")
    assert axes_of("h3.attn_scores") == axes_of("h3.attn_scores@t=5,b=0") == axes_of("gpt2.h3.attn_scores") == attention
    assert axes_of("logits") == ("batch", "position", "token") and axes_of("h0.out@t=1,b=1") == ("batch", "position", "channel")
    ref = scores()[:1, :, 3:]  # one cached step: [1, H, 1, S]
    got = ref.copy()
    got[0, 2, 0, 1] += 1e-3
    assert compare("h1.attn_scores@t=3,b=0", got, ref, CHECKPOINT_TOL).worst == {"batch": 0, "head": 2, "query": 0, "key": 1}


def test_float32_masked_scores_use_float32s_mask_value():
    ref = scores()
    ref[ref == MIN] = np.finfo(np.float32).min  # float32's own mask value (float64's would overflow the cast)
    ref = ref.astype(np.float32)
    got = ref.copy()
    got[0, 0, 1, 0] += 1e-2  # far above float32's tolerance at this scale (max |ref| 9.5)
    c = compare("h0.attn_scores", got, ref, CHECKPOINT_TOL)
    assert not c.ok and c.worst == {"batch": 0, "head": 0, "query": 1, "key": 0}, c.message()


def test_problems_keep_the_name_shape_and_dtype_of_what_was_compared():
    half = np.zeros((1, 2, 3), np.float16)
    c = compare("h0.out", half, half, CHECKPOINT_TOL)
    assert (c.name, c.shape, c.dtype, c.problem) == ("h0.out", [1, 2, 3], "float16", "no tolerance for dtype float16")
    ref = np.zeros((1, 2, 3))
    bad_ref = ref.copy()
    bad_ref[0, 1, 2] = np.nan
    c = compare("ln_f", ref, bad_ref, CHECKPOINT_TOL)
    assert (c.name, c.shape, c.dtype, c.ok) == ("ln_f", [1, 2, 3], "float64", False)
    assert c.problem == "the reference has non-finite values, first at batch 0, position 1, channel 2"


def test_masked_entry_and_non_finite_problems_keep_the_shape_and_name_the_dtypes_mask_value():
    ref = scores()
    ref[ref == MIN] = np.finfo(np.float32).min
    ref = ref.astype(np.float32)
    got = ref.copy()
    got[1, 2, 0, 3] = -1e30
    c = compare("h2.attn_scores", got, ref, CHECKPOINT_TOL)
    assert (c.name, c.shape, c.dtype) == ("h2.attn_scores", [2, 3, 4, 4], "float32")
    assert c.problem == (f"a masked entry is not the mask value {float(np.finfo(np.float32).min)!r} at "
                         "batch 1, head 2, query 0, key 3")  # fmt: skip
    got = ref.copy()
    got[0, 0, 0, 0] = np.inf
    c = compare("h2.attn_scores", got, ref, CHECKPOINT_TOL)
    assert (c.name, c.shape, c.dtype) == ("h2.attn_scores", [2, 3, 4, 4], "float32")
    assert c.problem == "non-finite value at batch 0, head 0, query 0, key 0"


def test_tolerance_scale_is_max_unmasked_ref_with_one_for_an_all_zero_or_empty_reference():
    tol = CHECKPOINT_TOL[np.dtype(F64)]
    small = scores()
    small[small != MIN] /= 1000  # unmasked |ref| <= 0.0095: the masked entries must not raise the scale to 1
    got = small.copy()
    got[0, 0, 3, 0] += 5 * tol * 0.0095
    c = compare("h0.attn_scores", got, small, CHECKPOINT_TOL)
    assert not c.ok and c.atol == tol * np.abs(small[small != MIN]).max(), c.message()
    zeros = np.zeros((1, 2, 3))
    assert compare("h0.out", zeros + 0.5 * tol, zeros, CHECKPOINT_TOL).ok  # scale 1, not 0
    assert not compare("h0.out", zeros + 2 * tol, zeros, CHECKPOINT_TOL).ok
    empty = np.zeros((1, 0, 3))
    c = compare("h0.out", empty, empty, CHECKPOINT_TOL)
    assert c.ok and (c.name, c.shape, c.dtype, c.max_abs, c.max_rel, c.atol, c.worst) == ("h0.out", [1, 0, 3], "float64", 0.0, 0.0, tol, {})


def test_a_checkpoint_whose_compared_entries_are_all_masked_has_scale_zero():
    """No unmasked entry sets the scale: it is 0 (the tolerance relative to 1), never the mask value or -inf."""
    ref = np.full((1, 1, 2, 2), MIN)
    c = compare("h0.attn_scores", ref.copy(), ref, CHECKPOINT_TOL)
    assert c.ok and c.compared == 4 and c.atol == CHECKPOINT_TOL[np.dtype(F64)], c.message()
    assert (c.scale, c.max_abs, c.max_rel) == (0.0, 0.0, 0.0) and np.copysign(1.0, c.max_rel) == 1.0
    assert c.budget_rel == c.atol


def test_the_largest_difference_is_the_largest_in_magnitude_whatever_its_sign():
    ref = np.zeros((1, 3, 4))
    got = ref.copy()
    got[0, 1, 2], got[0, 2, 0] = -0.5, 0.1  # the engine below the reference by more than above it
    c = compare("h0.attn_out", got, ref, CHECKPOINT_TOL)
    assert c.max_abs == 0.5 and c.worst == {"batch": 0, "position": 1, "channel": 2} and c.got_value == -0.5, c.message()


def test_float32_differences_are_measured_exactly_in_float64():
    """1.0 - 2^-30 in float32 arithmetic rounds to 1.0; the difference reported is the exact one."""
    ref = np.ones((1, 1, 2), np.float32)
    got = np.array([[[2.0**-30, 1.0]]], np.float32)
    c = compare("h0.attn_out", got, ref, CHECKPOINT_TOL)
    assert c.max_abs == 1.0 - 2.0**-30, c.max_abs


def test_a_floored_tolerance_scales_by_the_larger_of_one_and_max_ref():
    """DRAWN_TOL (the conformance suite's drawn models): a reference of scale 2.6e-5 is held to 1e-12 absolute in
    float64, not 1e-12 x 2.6e-5; one of scale 4 to 4e-12, as CHECKPOINT_TOL holds it."""
    from gpt2core.verification.tolerances import DRAWN_TOL

    small = np.full((1, 2, 3), 2.6e-5)
    c = compare("h0.attn_heads", small + 5e-13, small, DRAWN_TOL)
    assert c.ok and c.atol == 1e-12, c.message()
    assert not compare("h0.attn_heads", small + 5e-13, small, CHECKPOINT_TOL).ok
    assert not compare("h0.attn_heads", small + 2e-12, small, DRAWN_TOL).ok
    large = np.full((1, 2, 3), -4.0)
    c = compare("logits", large + 3e-12, large, DRAWN_TOL)
    assert c.ok and c.atol == 4e-12 == compare("logits", large, large, CHECKPOINT_TOL).atol, c.message()
    assert compare("h0.attn_heads", np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), DRAWN_TOL).atol == 1e-12


def padded_scores():
    """scores() of a batch whose row 1 has one padding position (position 0) and the entries the model defines."""
    from gpt2core.verification.batch_layout import defined_entries

    ref = scores()
    tokens = np.array([[True] * 4, [False, True, True, True]])
    return ref, defined_entries("h0.attn_scores", tokens, ref.shape)


def test_entries_the_model_does_not_define_are_not_compared_at_all():
    ref, defined = padded_scores()
    got = ref.copy()
    got[1, :, 0, :] = np.nan  # a padding query row
    got[1, :, 2, 0] = 1e30  # a padding key (masked in the reference: not held to the mask value either)
    ref_with_artefact = ref.copy()
    ref_with_artefact[1, :, 0, :] = 1e6  # whatever the reference holds there is not its scale
    c = compare("h0.attn_scores", got, ref_with_artefact, CHECKPOINT_TOL, defined)
    assert c.ok and c.max_abs == 0.0 and c.compared == int(defined.sum()) and c.excluded == defined.size - c.compared
    assert c.atol == CHECKPOINT_TOL[np.dtype(F64)] * 9.5  # max |ref| over the defined, unmasked entries
    assert (c.compared, c.excluded) == (2 * 3 * 16 - 3 * 7, 3 * 7)  # row 1: query 0 (4 keys) and key 0 (3 more)


def test_undefined_entries_whose_difference_would_signal_are_compared_under_errors_as_exceptions():
    """A user running with NumPy's errors raised (np.errstate(all="raise")) gets a verdict, not a crash, whatever
    the padding holds: inf - inf (invalid) and 1.7e308 - -1.7e308 (overflow) at entries not compared."""
    ref, defined = padded_scores()
    got, ref = ref.copy(), ref.copy()
    got[1, :, 0, 0], ref[1, :, 0, 0] = np.inf, np.inf  # a padding query row
    got[1, :, 0, 1], ref[1, :, 0, 1] = 1.7e308, -1.7e308
    with np.errstate(all="raise"):
        c = compare("h0.attn_scores", got, ref, CHECKPOINT_TOL, defined)
    assert c.ok and c.max_abs == 0.0, c.message()


def test_a_defined_entry_still_fails_in_every_way():
    ref, defined = padded_scores()
    for where, value, problem in (((1, 1, 2, 1), np.nan, "non-finite value at batch 1, head 1, query 2, key 1"),
                                  ((1, 1, 1, 3), 0.5, "a masked entry is not the mask value"),
                                  ((1, 1, 3, 2), 7.0, None)):  # fmt: skip
        got = ref.copy()
        got[where] = value
        c = compare("h0.attn_scores", got, ref, CHECKPOINT_TOL, defined)
        assert not c.ok
        if problem is None:
            assert c.compared == int(defined.sum()) and c.worst == {"batch": 1, "head": 1, "query": 3, "key": 2} and c.got_value == 7.0
        else:
            assert c.problem.startswith(problem), c.problem
    bad_ref = ref.copy()
    bad_ref[1, 0, 3, 3] = np.inf
    assert compare("h0.attn_scores", ref, bad_ref, CHECKPOINT_TOL, defined).problem.startswith("the reference has non-finite")
    bad_ref[1, 0, 3, 3], bad_ref[1, 0, 0, 0] = ref[1, 0, 3, 3], np.inf  # at a padding query: not read
    assert compare("h0.attn_scores", ref, bad_ref, CHECKPOINT_TOL, defined).ok


def test_nothing_defined_compares_nothing_and_a_wrong_mask_is_refused():
    ref, defined = padded_scores()
    c = compare("h0.attn_scores", np.full_like(ref, np.nan), ref, CHECKPOINT_TOL, np.zeros_like(defined))
    assert c.ok and (c.compared, c.excluded, c.max_abs, c.worst) == (0, ref.size, 0.0, {})
    with pytest.raises(ValueError, match="not bool"):
        compare("h0.attn_scores", ref, ref, CHECKPOINT_TOL, defined[:1])
    with pytest.raises(ValueError, match="not bool"):
        compare("h0.attn_scores", ref, ref, CHECKPOINT_TOL, defined.astype(np.int8))


def test_defined_entries_follow_every_token_axis():
    from gpt2core.verification.batch_layout import defined_entries

    tokens = np.array([[False, True, True]])
    assert defined_entries("h0.ln_1", tokens, (1, 3, 2)).tolist() == [[[False, False], [True, True], [True, True]]]
    q = defined_entries("h0.q", tokens, (1, 2, 3, 1))
    assert q[0, :, :, 0].tolist() == [[False, True, True]] * 2
    k = defined_entries("h0.k", tokens, (1, 1, 3, 2))
    assert k[0, 0].tolist() == [[False, False], [True, True], [True, True]]
    probs = defined_entries("h0.attn_probs", tokens, (1, 1, 3, 3))
    assert probs[0, 0].tolist() == [[False] * 3, [False, True, True], [False, True, True]]
    assert defined_entries("logits", tokens, (1, 3, 4)).sum() == 8


@pytest.mark.parametrize(("name", "tokens", "shape", "message"), [
    ("h0.ln_1", [[False, True, True]], (1, 3), "h0.ln_1: shape [1, 3] does not have the axes ('batch', 'position', 'channel')"),
    ("h0.ln_1", [[True, True]], (1, 3, 2), "h0.ln_1: a token mask [1, 2] does not fit its position axis in shape [1, 3, 2]"),
    ("h0.k", [[False, True, True]], (1, 1, 4, 2), "h0.k: a token mask [1, 3] does not fit its key axis in shape [1, 1, 4, 2]"),
    ("h0.attn_probs", [[True, True]], (2, 1, 2, 2), "h0.attn_probs: a token mask [1, 2] does not fit its query axis in shape [2, 1, 2, 2]"),
])  # fmt: skip
def test_defined_entries_refuse_a_shape_or_a_token_mask_that_does_not_fit_naming_both(name, tokens, shape, message):
    """The honest error of a budget reads defined_entries' refusal as it is: it names the checkpoint, the shape and
    the axis the tokens [B, T] do not fit."""
    from gpt2core.verification.batch_layout import defined_entries

    with pytest.raises(ValueError) as refused:
        defined_entries(name, np.array(tokens), shape)
    assert str(refused.value) == message


def test_the_budget_relative_to_the_reference_is_the_tolerance_over_the_largest_compared_value():
    """budget_rel (the error-growth chart reads it against max_rel) is atol / max|ref| over the compared entries
    only, as max_rel is max_abs / max|ref|: an entry the model does not define is no part of either scale."""
    ref = np.array([[[2.0, -4.0, 1.0]]])
    got = ref + np.array([[[1e-9, 0.0, 0.0]]])
    whole = compare("h3.out", got, ref, CHECKPOINT_TOL, at_least=2e-9)
    assert (whole.scale, whole.budget_rel, whole.max_rel) == (4.0, whole.atol / 4.0, whole.max_abs / 4.0), whole
    defined = np.array([[[True, False, True]]])
    part = compare("h3.out", got, ref, CHECKPOINT_TOL, defined, at_least=2e-9)
    assert (part.scale, part.budget_rel, part.max_rel) == (2.0, part.atol / 2.0, part.max_abs / 2.0), part


def test_a_measured_budget_raises_the_tolerance_and_a_waiver_accepts_only_within_its_own():
    """at_least raises atol above tol * max|ref| (never lowers it); a waiver turns a comparison beyond its budget
    but within the declared relative tolerance into ok + waived, and nothing else."""
    ref = np.array([[[2.0, -4.0, 1.0]]])
    got = ref + np.array([[[0.0, 1e-9, 0.0]]])
    assert compare("h3.out", got, ref, CHECKPOINT_TOL, at_least=1e-20).atol == 4e-12
    c = compare("h3.out", got, ref, CHECKPOINT_TOL, at_least=2e-9)
    assert c.atol == 2e-9 and c.ok and c.within and not c.waived
    diff = c.max_abs  # 1e-9 as float64 subtraction leaves it
    assert compare("h3.out", got, ref, CHECKPOINT_TOL, at_least=diff).within  # max_abs == atol passes
    c = compare("h3.out", got, ref, CHECKPOINT_TOL)
    assert not c.ok and not c.waived
    c.waiver, c.waiver_tol = "known", c.max_rel
    assert c.ok and c.waived and not c.within and "WAIVED (known" in c.message()
    assert c.as_dict()["waived"] and c.as_dict()["waiver"] == "known"
    c.waiver_tol = c.max_rel * 0.99
    assert not c.ok and not c.waived and "EXCEEDS TOLERANCE" in c.message()
    p = compare("h3.out", got[..., :2], ref, CHECKPOINT_TOL)
    p.waiver, p.waiver_tol = "known", 0.5
    assert not p.ok and not p.waived  # a problem is never waived


def test_the_report_dict_names_a_waiver_only_where_it_waived_the_comparison():
    """A deviation covering a checkpoint within its own budget waives nothing: its reason is not reported; beyond the
    budget and within the deviation's tolerance, the comparison passes waived and says why."""
    from dataclasses import replace

    ref = np.array([[[2.0, -4.0, 1.0]]])
    within = replace(compare("h3.out", ref + 1e-13, ref, CHECKPOINT_TOL), waiver="float16 KV cache", waiver_tol=1e-2)
    assert within.ok and not within.waived and within.as_dict()["waiver"] is None
    beyond = replace(compare("h3.out", ref + 1e-3, ref, CHECKPOINT_TOL), waiver="float16 KV cache", waiver_tol=1e-2)
    assert beyond.ok and beyond.waived and (beyond.as_dict()["waived"], beyond.as_dict()["waiver"]) == (True, "float16 KV cache")
