"""The processed-scores comparison of sampled generation (gpt2core.verification.sampling) on hand-made scores:
each way a subject's scores can be wrong is a failure naming it, and only rounding at a filter's threshold
is excused (counted as undecided)."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2core.engine.generate import sampling_scores
from gpt2core.verification.sampling import SamplingSettings, compare_sampled, compare_scores, step_name, undecided_tokens
from gpt2core.verification.tolerances import SAMPLE_CUMULATIVE_TOL, SAMPLE_SCORES_TOL

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
RAW = np.array([[4.0, 3.0, 2.0, 1.0, 0.0, -1.0], [0.5, 2.5, -3.0, 1.5, 0.0, 1.0]], dtype=np.float32)
TOP3 = SamplingSettings(temperature=2.0, top_k=3, top_p=1.0, seed=0, max_new_tokens=1)


def scores(raw, s):
    return sampling_scores(raw, s.temperature, s.top_k, s.top_p)


def test_equal_scores_pass_with_a_zero_margin():
    ref = scores(RAW, TOP3)
    c = compare_scores("sample.scores@step=0", ref.copy(), ref, RAW, TOP3, F64)
    assert c.ok and c.max_abs == 0 and c.worst["undecided_tokens"] == 0, c.message()
    assert np.isneginf(ref).sum() == 6 and c.atol == pytest.approx(SAMPLE_SCORES_TOL[F64] * 2.0)  # max|kept| = 4 / 2


@pytest.mark.parametrize(("got", "problem"), [
    (lambda r: r.astype(np.float64), "float64 [2, 6] != reference float32 [2, 6] (transformers processes scores in float32)"),
    (lambda r: r[:1], "float32 [1, 6] != reference float32 [2, 6]"),
    (lambda r: r.tolist(), "expected a NumPy array, got list"),
    (lambda r: np.where(np.arange(6) == 5, np.nan, r).astype(np.float32), "NaN or +inf at batch 0, token 5"),
    (lambda r: np.where(np.arange(6) == 4, np.inf, r).astype(np.float32), "NaN or +inf at batch 0, token 4"),
    (lambda r: np.where(np.arange(6) == 3, 0.5, r).astype(np.float32), "1 token(s) filtered differently, first row 0 token 3: got 0.5, transformers -inf"),
    (lambda r: np.where(np.arange(6) == 0, -np.inf, r).astype(np.float32), "1 token(s) filtered differently, first row 0 token 0: got -inf, transformers 2.0"),
])  # fmt: skip
def test_each_wrong_answer_is_a_named_failure(got, problem):
    ref = scores(RAW, TOP3)
    answer = got(ref.copy())
    c = compare_scores("sample.scores@step=2", answer, ref, RAW, TOP3, F64)
    assert not c.ok and c.problem == problem, c.message()
    assert c.shape == list(np.shape(answer)), c  # the report shows what the subject returned
    assert c.message().startswith("sample.scores@step=2: ")


@pytest.mark.parametrize(("engine_dtype", "passes"), [(F32, True), (F64, False)])
def test_values_are_held_to_the_engine_dtypes_tolerance(engine_dtype, passes):
    """1e-5 relative is within a float32 engine's 2e-5 and far outside a float64 engine's 2.4e-7."""
    ref = scores(RAW, TOP3)
    got = np.where(np.isfinite(ref), ref * np.float32(1 + 1e-5), ref).astype(np.float32)
    c = compare_scores("s", got, ref, RAW, TOP3, engine_dtype)
    assert c.ok is passes and c.problem is None and c.atol == pytest.approx(SAMPLE_SCORES_TOL[engine_dtype] * 2.0)
    assert c.max_abs == pytest.approx(2.0 * 1e-5, rel=1e-2) and c.worst["axis1"] == 0


def test_a_tie_at_top_k_threshold_is_undecided_not_failed():
    """Two tokens tied for the k-th place: transformers keeps both; an engine that cuts one is excused only there."""
    raw = np.array([[5.0, 4.0, 3.0, 3.0, 1.0]], dtype=np.float32)
    s = SamplingSettings(1.0, 3, 1.0, 0, 1)
    assert undecided_tokens(raw, s, 0.0).tolist() == [[False, False, True, True, False]]
    ref = scores(raw, s)
    cut_tie = np.where(np.arange(5) == 3, -np.inf, ref).astype(np.float32)
    c = compare_scores("s", cut_tie, ref, raw, s, F64)
    assert c.ok and c.worst["undecided_tokens"] == 1, c.message()
    cut_far = np.where(np.arange(5) == 0, -np.inf, ref).astype(np.float32)
    assert not compare_scores("s", cut_far, ref, raw, s, F64).ok


def test_top_k_keeping_one_less_is_not_excused():
    """Without a near tie the k-th token is decided: an engine that cuts it fails."""
    raw = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    s = SamplingSettings(1.0, 3, 1.0, 0, 1)
    assert not undecided_tokens(raw, s, 1e-6).any()
    ref = scores(raw, s)
    c = compare_scores("s", np.where(np.arange(5) == 2, -np.inf, ref).astype(np.float32), ref, raw, s, F64)
    assert not c.ok and "first row 0 token 2" in c.problem


def test_top_p_threshold_and_ties_with_it_are_undecided():
    """Cumulative probabilities (ascending) 0.1, 0.2, 0.4, 0.7, 1.0 (as logs); top_p 0.8 cuts where the sum is <= 0.2."""
    p = np.array([0.1, 0.1, 0.2, 0.3, 0.3])
    raw = np.log(p)[None].astype(np.float32)
    s = SamplingSettings(1.0, 0, 0.8, 0, 1)
    undecided = undecided_tokens(raw, s, 0.0)[0]
    assert undecided[:2].all() and not undecided[2:].any(), undecided  # token 1 sits at 0.2; token 0 is tied with it
    s2 = SamplingSettings(1.0, 0, 0.8 + 10 * SAMPLE_CUMULATIVE_TOL, 0, 1)  # the threshold moved off token 1:
    assert undecided_tokens(raw, s2, 0.0)[0].tolist() == [True, True, False, False, False]  # the tied pair straddles the cut
    s4 = SamplingSettings(1.0, 0, 0.75, 0, 1)  # cut after 0.2: tokens 0, 1 cut, token 2 (0.2) kept, none tied
    assert not undecided_tokens(raw, s4, 0.0).any()
    s3 = SamplingSettings(1.0, 0, 0.8 + 0.5 * SAMPLE_CUMULATIVE_TOL, 0, 1)  # within rounding of it
    assert undecided_tokens(raw, s3, 0.0)[0, :2].all()


def test_the_scores_tolerance_widens_the_band():
    raw = np.array([[5.0, 4.0, 3.0, 2.9, 1.0]], dtype=np.float32)
    s = SamplingSettings(1.0, 3, 1.0, 0, 1)
    assert not undecided_tokens(raw, s, 0.04).any()  # 0.1 apart, more than 2 x 0.04
    assert undecided_tokens(raw, s, 0.06)[0].tolist() == [False, False, True, True, False]
    s2 = SamplingSettings(2.0, 3, 1.0, 0, 1)  # the temperature halves the gap first: 0.05 < 2 x 0.03
    assert undecided_tokens(raw, s2, 0.03)[0].tolist() == [False, False, True, True, False]


def test_top_k_covering_the_vocabulary_decides_nothing():
    assert not undecided_tokens(RAW, SamplingSettings(1.0, 6, 1.0, 0, 1), 1.0).any()
    assert not undecided_tokens(RAW, SamplingSettings(1.0, 0, 1.0, 0, 1), 1.0).any()


class Case:
    """A reference case with one recorded sampling run of two steps."""

    name = "c"

    def __init__(self, settings, steps: dict):
        self.input_ids = np.array([[1, 2]])
        self.sampling = (settings, np.array([[1, 2, 3, 4]]))
        self.steps = steps

    def array(self, name):
        return self.steps[name]


class Subject:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def sample_scores(self, case, settings, path_ids):
        self.calls.append((settings, path_ids.tolist()))
        return self.answer


def two_steps() -> tuple[dict, dict]:
    """RAW's two rows as two recorded steps under TOP3: the raw logits and transformers' processed scores."""
    raw = {step_name("sample.logits", i): RAW[i : i + 1] for i in range(2)}
    ref = {step_name("sample.scores", i): scores(RAW[i : i + 1], TOP3) for i in range(2)}
    return raw, ref


def shifted(ref: dict, by: float, scale: float = 1.0) -> dict:
    """Each step's kept scores times `scale` plus `by` (float32); filtered ones stay -inf."""
    return {k: np.where(np.isneginf(v), v, v * np.float32(scale) + np.float32(by)).astype(np.float32) for k, v in ref.items()}


def test_compare_sampled_compares_every_recorded_step():
    raw, ref = two_steps()
    case = Case(TOP3, raw | ref)
    subject = Subject(dict(ref))
    out = compare_sampled(subject, case, F64)
    assert [c.name for c in out] == ["sample.scores@step=0", "sample.scores@step=1"] and all(c.ok for c in out)
    assert subject.calls == [(TOP3, [[1, 2, 3, 4]])]
    wrong = dict(ref, **{"sample.scores@step=1": ref["sample.scores@step=0"]})
    out = compare_sampled(Subject(wrong), case, F64)
    assert out[0].ok and not out[1].ok and "filtered differently" in out[1].problem
    out = compare_sampled(Subject({"sample.scores@step=0": ref["sample.scores@step=0"]}), case, F64)
    assert out[0].ok and out[1].problem == "not returned by the subject" and out[1].name == "sample.scores@step=1"
    out = compare_sampled(Subject({"sample.scores@step=1": ref["sample.scores@step=1"]}), case, F64)
    assert out[0].problem == "not returned by the subject" and out[1].ok and len(out) == 2


def test_the_undecided_band_scales_with_the_scores():
    """Scores near 100: the 3rd and 4th largest are one float32 ulp (7.6e-6) apart, within 2 x 2.4e-7 x 100 of
    each other: an engine that keeps the 4th instead of the 3rd is excused (a float64 engine's rounding)."""
    raw = np.array([[100.0, 90.0, 80.0, np.nextafter(np.float32(80), np.float32(0)), 1.0]], dtype=np.float32)
    s = SamplingSettings(1.0, 3, 1.0, 0, 1)
    ref = scores(raw, s)
    swapped = np.array([[100.0, 90.0, -np.inf, raw[0, 3], -np.inf]], dtype=np.float32)
    c = compare_scores("s", swapped, ref, raw, s, F64)
    assert c.ok and c.worst["undecided_tokens"] == 2, c.message()


def test_the_top_k_band_edges_exactly():
    """Binary-exact scores, atol 0.125 (band 0.25), k = 4. Row 0: the 4th and 5th largest (3.0, 2.75) are 0.25
    apart, at the band's edge: tokens within 0.25 of either are undecided, edges included (3.25, 2.5), and
    3.3125 and 2.4375 (0.3125 away) are not. Row 1: the same, with the 5th largest 0.375 below: decided."""
    raw = np.array([[5, 3.3125, 3.25, 3.0, 2.75, 2.5, 2.4375, 1],
                    [5, 3.3125, 3.25, 3.0, 2.625, 2.5, 1, 0]], dtype=np.float32)  # fmt: skip
    got = undecided_tokens(raw, SamplingSettings(1.0, 4, 1.0, 0, 1), 0.125)
    assert got.tolist() == [[False, False, True, True, True, True, False, False], [False] * 8], got
    halved = undecided_tokens(raw * 2, SamplingSettings(2.0, 4, 1.0, 0, 1), 0.125)  # the temperature divides first
    assert np.array_equal(halved, got)


def test_top_k_of_one_with_a_tie_for_first():
    raw = np.array([[3.0, 1.0, 3.0], [3.0, 1.0, 2.0]], dtype=np.float32)
    assert undecided_tokens(raw, SamplingSettings(1.0, 1, 1.0, 0, 1), 0.0).tolist() == [[True, False, True], [False] * 3]


def test_top_p_band_after_top_k():
    """p = 0.4, 0.3, 0.2, 0.1 as logs; top-k 3 drops 0.1, leaving 4/9, 3/9, 2/9: top_p 7/9 puts the threshold
    (2/9) on the 0.2 token, which is undecided. Without the top-k filter the sums would be 0.1, 0.3, 0.6, 1 and
    nothing would be near. Row 1 is the same tokens in another order, so the batch axis is kept apart."""
    p = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])
    raw = np.log(p).astype(np.float32)
    s = SamplingSettings(1.0, 3, 7 / 9, 0, 1)
    assert undecided_tokens(raw, s, 0.0).tolist() == [[False, False, True, False], [False, True, False, False]]
    assert not undecided_tokens(raw, SamplingSettings(1.0, 0, 7 / 9, 0, 1), 0.0).any()
    assert not undecided_tokens(raw, SamplingSettings(1.0, 3, 7 / 9 - 3 * SAMPLE_CUMULATIVE_TOL, 0, 1), 0.0).any()


def test_top_p_band_grows_with_the_scores_tolerance():
    """The band is SAMPLE_CUMULATIVE_TOL + 2 atol x the cumulative sum: at a sum of 2/9, atol 1e-4 widens it by
    4.4e-5, so a threshold 3e-5 away is near with that atol and not without it."""
    p = np.array([[0.4, 0.3, 0.2, 0.1]])
    raw = np.log(p).astype(np.float32)
    s = SamplingSettings(1.0, 3, 7 / 9 - 3e-5, 0, 1)
    assert not undecided_tokens(raw, s, 0.0).any()
    assert undecided_tokens(raw, s, 1e-4).tolist() == [[False, False, True, False]]
    assert not undecided_tokens(raw, SamplingSettings(1.0, 3, 7 / 9 - 6e-5, 0, 1), 1e-4).any()


def test_tokens_tied_with_a_top_p_threshold_token_are_undecided_within_the_band():
    """Row 0: probabilities 0.1, 0.1, then a token 2 atol above them, the rest: the threshold (0.2) falls on the
    second 0.1; it, its tied twin and the token at the band's edge are undecided, the last one is not.
    Row 1 (0.15, 0.25, 0.25, 0.35) has no sum near 0.2."""
    atol = 2.0**-12
    a = np.float32(np.log(0.1))
    third = a + np.float32(2 * atol)  # exact: 2^-11 is a multiple of a's ulp
    rest = np.log(1 - 0.2 - np.exp(np.float64(third)))
    raw = np.array([[a, a, third, rest], np.log([0.15, 0.25, 0.25, 0.35])], dtype=np.float32)
    got = undecided_tokens(raw, SamplingSettings(1.0, 0, 0.8, 0, 1), atol)
    assert got.tolist() == [[True, True, True, False], [False] * 4], got


def test_equal_scores_across_the_top_p_cut_are_undecided():
    """21 equal logits, top_p 0.95: one token is cut (1/21 <= 0.05 < 2/21), no sum is near 0.05, and which one
    is cut depends on the sort: all 21 are undecided. A cut between unequal scores stays decided (row 1)."""
    raw = np.array([np.zeros(21), np.linspace(-2, 2, 21)], dtype=np.float32)
    got = undecided_tokens(raw, SamplingSettings(0.3, 0, 0.95, 0, 1), 0.0)
    assert got[0].all() and not got[1].any(), got
    ref = scores(raw, SamplingSettings(0.3, 0, 0.95, 0, 1))
    other = np.roll(ref, 5, axis=-1)  # another of the equal tokens cut
    assert compare_scores("s", np.stack([other[0], ref[1]]), ref, raw, SamplingSettings(0.3, 0, 0.95, 0, 1), F32).ok


def test_the_band_of_small_scores_is_not_floored_at_one():
    """Scores below 1 (max 0.5): the band is 2 x 2.4e-7 x 0.5 = 2.4e-7, so 3rd and 4th largest 10 float32 ulps
    (3.0e-7) apart are decided, and keeping the 4th instead of the 3rd fails."""
    third = np.float32(0.3)
    fourth = third - np.float32(10) * np.spacing(third)
    raw = np.array([[0.5, 0.4, third, fourth, 0.1]], dtype=np.float32)
    s = SamplingSettings(1.0, 3, 1.0, 0, 1)
    ref = scores(raw, s)
    swapped = np.array([[0.5, 0.4, -np.inf, fourth, -np.inf]], dtype=np.float32)
    c = compare_scores("s", swapped, ref, raw, s, F64)
    assert not c.ok and "2 token(s) filtered differently" in c.problem, c.message()


def test_a_tie_for_the_most_probable_token_under_a_tiny_top_p():
    """top_p 0.01 cuts all but one token; with the two most probable tied, which one stays depends on the sort."""
    raw = np.array([[1.0, 3.0, 3.0]], dtype=np.float32)
    assert undecided_tokens(raw, SamplingSettings(1.0, 0, 0.01, 0, 1), 0.0).tolist() == [[False, True, True]]


def test_the_pair_across_top_p_cut_is_tied_only_within_two_atol():
    """Token 1 sits 2.5 atol above token 0, and top-p cuts between them: decided (not a tie)."""
    atol = 2.0**-12
    a = np.float32(np.log(0.1))
    raw = np.array([[a, a + np.float32(2.5 * atol), np.log(0.8)]], dtype=np.float32)
    assert not undecided_tokens(raw, SamplingSettings(1.0, 0, 0.85, 0, 1), atol).any()


def test_tokens_top_k_cuts_beyond_the_band_leave_the_top_p_sums():
    """k = 2 over 3.0, 2.0 and 2.0 - 2.5 atol: the third is cut by top-k (not a tie), so top-p's sums are over the
    first two, and top_p = 1 - p(2.0) puts the threshold on the second token."""
    atol = 2.0**-12
    raw = np.array([[3.0, 2.0, 2.0 - 2.5 * atol]], dtype=np.float32)
    top_p = 1 - 1 / (1 + np.e)
    assert undecided_tokens(raw, SamplingSettings(1.0, 2, top_p, 0, 1), atol).tolist() == [[False, True, False]]


def test_the_group_tied_with_a_top_p_token_reaches_two_atol_and_no_further():
    """The threshold falls on token 1 (top_p = 1 - its cumulative probability); tokens 2.5 atol below (0) and
    above (2) it carry 0.2-0.3 of the probability each, so their own sums are far from the threshold: decided."""
    atol = 2.0**-10
    raw = np.array([[1.0 - 2.5 * atol, 1.0, 1.0 + 2.5 * atol, 3.0, -20.0]], dtype=np.float32)
    s = raw[0].astype(np.float64)
    p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    top_p = 1 - (p[4] + p[0] + p[1])  # ascending: token 4, 0, 1, 2, 3
    got = undecided_tokens(raw, SamplingSettings(1.0, 0, top_p, 0, 1), atol)
    assert got.tolist() == [[False, True, False, False, False]], got


def test_top_p_ties_add_to_top_k_undecided_tokens():
    """In one row: the 3rd and 4th largest tied within 2 atol (top-k undecided), and top-p's threshold on another
    token: both sets are undecided, the one not replacing the other."""
    atol = 2.0**-10
    raw = np.array([[10.0, 5.0, 2.0, 2.0 + atol, -30.0]], dtype=np.float32)
    s = raw[0].astype(np.float64)
    kept = s[:4]
    p = np.exp(kept - kept.max()) / np.exp(kept - kept.max()).sum()
    top_p = 1 - (p[2] + p[3] + p[1])  # ascending among those top-k keeps: tokens 2, 3, 1, 0; threshold on token 1
    got = undecided_tokens(raw, SamplingSettings(1.0, 3, top_p, 0, 1), atol)
    assert got.tolist() == [[False, True, True, True, False]], got


@pytest.mark.parametrize(("change", "ok"), [
    ({}, True), ({"top_k": 0}, True), ({"top_p": 1.0}, True), ({"max_new_tokens": 1}, True),
    ({"temperature": 0.0}, False), ({"top_k": -1}, False), ({"top_p": 0.0}, False), ({"top_p": 1.01}, False),
    ({"max_new_tokens": 0}, False),
])  # fmt: skip
def test_sampling_settings_from_a_manifest_are_range_checked(change, ok):
    d = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "seed": 0, "max_new_tokens": 4} | change
    if ok:
        assert SamplingSettings.from_dict(d).as_dict() == d
    else:
        with pytest.raises(ValueError, match="sampling settings out of range"):
            SamplingSettings.from_dict(d)


def test_an_undecided_top_k_set_makes_the_tokens_between_top_ps_two_cuts_undecided():
    """top-k 4 with the 4th and 5th largest tied within 2 atol: top-p sees either 5 tokens or 3, and its threshold
    lies between the two cumulative probabilities of the token scoring 3: cut with 3 tokens, kept with 5. That
    token is undecided; the tokens above both cuts are not."""
    atol = 2.0**-10
    raw = np.array([[10.0, 4.0, 3.0, 2.0, 2.0 + atol, -30.0]], dtype=np.float32)
    s = raw[0].astype(np.float64)

    def cum_at_3(tokens):
        p = np.exp(s[tokens] - s.max())
        return p[s[tokens] <= 3.0].sum() / p.sum()

    small, large = cum_at_3([0, 1, 2]), cum_at_3([0, 1, 2, 3, 4])
    top_p = 1 - (small + large) / 2  # 1 - top_p: half way between, far from either within the band
    got = undecided_tokens(raw, SamplingSettings(1.0, 4, top_p, 0, 1), atol)
    assert got.tolist() == [[False, False, True, True, True, False]], got


def test_a_top_k_set_undecided_in_whole_leaves_the_tokens_below_it_decided():
    """top-k 1 with the two largest tied within 2 atol: both are undecided, but the tokens top-k cuts for certain
    stay decided (no empty 'smallest set' may make top-p's cut the bottom of the vocabulary)."""
    atol = 2.0**-10
    raw = np.array([[5.0, 5.0 + atol / 2, 1.0, 0.0]], dtype=np.float32)
    got = undecided_tokens(raw, SamplingSettings(1.0, 1, 0.9, 0, 1), atol)
    assert got.tolist() == [[True, True, False, False]], got


@pytest.mark.parametrize("shift", [0.0, 400.0], ids=["scores-near-0", "scores-near-400"])
@pytest.mark.parametrize("probs", [(1, 1, 2), (1, 2, 7), (1, 3, 4)], ids=["cum-at-the-cut", "cum-off-it", "cum-at-it-untied"])
def test_top_p_first_kept_score_is_transformers_smallest_kept(probs, shift):
    """top_p_undecided's cut against transformers' TopPLogitsWarper on the same float64 scores (top_p 0.5):
    removed where the ascending cumulative probability is <= 1 - top_p (0.25, 0.5 exactly for the first), and
    scores of a low temperature (400 = 20 / 0.05) must not overflow the probabilities."""
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    from gpt2core.verification.sampling import top_p_undecided

    s = (np.log(np.array(probs, dtype=np.float64)) + shift)[None]
    kept = TopPLogitsWarper(top_p=0.5)(None, torch.tensor(s)).numpy()
    _, first_kept = top_p_undecided(s, SamplingSettings(1.0, 0, 0.5, 0, 1), 0.0)
    assert first_kept.tolist() == [kept[np.isfinite(kept)].min()], (s, kept, first_kept)


def test_sampled_result_judges_at_the_engine_dtype_and_no_budget_unless_given():
    """verify's sampled row: scores 1e-5 (relative) off transformers' pass a float32 engine (its tolerance 2e-5)
    and fail a float64 one (2.4e-7); without a logits budget an absolute 0.05 off fails, with one of 0.2 (0.1 on scores at temperature 2) passes."""
    from gpt2core.verification.verify import sampled_result

    raw, ref = two_steps()
    case = Case(TOP3, raw | ref)
    near = shifted(ref, 0.0, 1 + 1e-5)
    assert sampled_result(Subject(near), case, F32)["ok"]
    assert not sampled_result(Subject(near), case, F64)["ok"]
    off = shifted(ref, 0.05)
    row = sampled_result(Subject(off), case, F32)
    assert not row["ok"] and row["case"] == "c" and row["settings"] == TOP3.as_dict(), row
    assert [s["message"].split(": ")[:2] for s in row["steps"]] == [[s["name"], "EXCEEDS TOLERANCE"] for s in row["steps"]], row
    assert sampled_result(Subject(off), case, F32, 0.2)["ok"]  # 0.1 on scores at temperature 2


def test_compare_sampled_has_no_logits_budget_unless_given():
    """Scores 0.05 off transformers' fail at the class tolerance alone, and pass a logits budget of 0.2
    (0.1 on scores at temperature 2: the budget is divided by the temperature, so 0.15 off fails it)."""
    raw, ref = two_steps()
    off = shifted(ref, 0.05)
    case = Case(TOP3, raw | ref)
    assert [c.ok for c in compare_sampled(Subject(off), case, F32)] == [False, False]
    assert [c.ok for c in compare_sampled(Subject(off), case, F32, 0.2)] == [True, True]
    further = shifted(ref, 0.15)
    assert [c.ok for c in compare_sampled(Subject(further), case, F32, 0.2)] == [False, False]  # 0.15 > 0.2 / 2


def test_a_step_file_that_cannot_be_read_fails_that_step_only():
    """An engine verified through files: step 0's file is broken (DumpError on reading), step 1 still compared."""
    from gpt2core.verification.errors import DumpError

    raw, ref = two_steps()

    class BrokenFirst(dict):
        def __getitem__(self, name):
            if name.endswith("step=0"):
                raise DumpError(f"{name}.npy: not a .npy file")
            return super().__getitem__(name)

    out = compare_sampled(Subject(BrokenFirst(ref)), Case(TOP3, raw | ref), F64)
    assert [(c.name, c.ok, c.problem) for c in out] == [
        ("sample.scores@step=0", False, "sample.scores@step=0.npy: not a .npy file"), ("sample.scores@step=1", True, None)]


def test_each_row_of_a_batch_has_its_own_top_k_sets():
    """Two rows, top-k 3, top-p 0.9, atol 0.1 (2 atol = 0.2). Row 0: the 3rd and 4th largest (2.0, 1.95) are
    tied within 0.2, so both are undecided; 2.25 lies beyond 0.2 above the 3rd, in both possible sets, and
    top-p keeps it in both: decided. Row 1: all four largest lie within 0.2 of the 3rd: no smaller set exists
    (top-p runs on the largest twice), and -1.0, which top-k cuts for certain, stays decided, whatever row 0's
    sets are."""
    raw = np.array([[3.0, 2.25, 2.0, 1.95, -1.0], [2.05, 2.0, 1.95, 1.9, -1.0]], dtype=np.float32)
    got = undecided_tokens(raw, SamplingSettings(1.0, 3, 0.9, 0, 1), 0.1)
    assert got.tolist() == [[False, False, True, True, False], [True, True, True, True, False]], got


def test_a_top_k_set_undecided_in_whole_runs_top_p_on_no_empty_set():
    """The batch above, with NumPy's warnings as errors: row 1 has no smaller top-k set, and top-p on an empty
    (all -inf) set would compute -inf - -inf (NaN, 'invalid value'); a user running with -W error must not
    see the comparison crash. Row 0's smaller set must not stand in for row 1's."""
    raw = np.array([[3.0, 2.25, 2.0, 1.95, -1.0], [2.05, 2.0, 1.95, 1.9, -1.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        got = undecided_tokens(raw, SamplingSettings(1.0, 3, 0.9, 0, 1), 0.1)
    assert got.tolist() == [[False, False, True, True, False], [True, True, True, True, False]], got


def test_a_token_top_k_cuts_for_certain_is_decided_even_just_below_top_ps_cut():
    """top-k 1 with the two largest (0.25) tied; atol 0.25 (2 atol = 0.5). -0.3 lies 0.55 below the k-th: cut by
    top-k for certain, though within 0.5 of top-p's first kept score (0.0, in the set top-k may keep). An engine
    that keeps it fails; 0.0, within 0.5 of the k-th, is undecided."""
    raw = np.array([[0.0, 0.25, -0.3, 0.25]], dtype=np.float32)
    s = SamplingSettings(1.0, 1, 0.95, 0, 1)
    assert undecided_tokens(raw, s, 0.25).tolist() == [[True, True, False, True]]
    ref = scores(raw, s)
    kept = np.where(np.arange(4) == 2, raw / np.float32(s.temperature), ref).astype(np.float32)
    c = compare_scores("s", kept, ref, raw, s, F32, at_least=0.25)
    assert not c.ok and "first row 0 token 2" in c.problem, c.message()


def test_a_token_exactly_two_atol_above_the_kth_is_out_of_top_ks_smallest_set():
    """"Within 2 atol" is closed everywhere. top-k 5, atol 0.25: the 5th and 6th largest (-0.5, -1.0) are tied
    within 0.5, and the two 0.0 tokens lie exactly 0.5 above the 5th: undecided, so top-k's smallest possible
    set is {2.0, 1.25}. There top-p 0.8's threshold (0.2) lies within its band of 1.25's cumulative 0.32
    (2e-6 + 2 x 0.25 x 0.32 = 0.16): 1.25 is undecided too. Only 2.0 is decided."""
    raw = np.array([[-1.0, 2.0, -0.5, 0.0, 0.0, 1.25]], dtype=np.float32)
    got = undecided_tokens(raw, SamplingSettings(1.0, 5, 0.8, 0, 1), 0.25)
    assert got.tolist() == [[True, False, True, True, True, True]], got
