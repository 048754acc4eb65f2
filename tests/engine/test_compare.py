"""gpt2core.compare: what passes, what fails, and where the report says the worst element is."""

from __future__ import annotations

import numpy as np

from gpt2core.compare import compare
from gpt2core.tolerances import CHECKPOINT_TOL

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
    assert c.problem == f"a masked entry is not the mask value {float(MIN)!r} at {{'batch': 0, 'head': 1, 'query': 2, 'key': 3}}"


def test_non_finite_values_are_located_in_got_and_ref():
    ref = scores()
    got = ref.copy()
    got[1, 0, 2, 1] = np.nan
    assert compare("h0.attn_scores", got, ref, CHECKPOINT_TOL).problem == (
        "non-finite value at {'batch': 1, 'head': 0, 'query': 2, 'key': 1}"
    )
    bad_ref = ref.copy()
    bad_ref[0, 2, 1, 0] = np.inf
    assert compare("h0.attn_scores", ref, bad_ref, CHECKPOINT_TOL).problem == (
        "the reference has non-finite values, first at {'batch': 0, 'head': 2, 'query': 1, 'key': 0}"
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
        "worst": {"batch": 0, "position": 0, "channel": 1}, "problem": None,
    }  # fmt: skip
    p = compare("h3.out", got[..., :2], ref, CHECKPOINT_TOL)
    assert p.as_dict() == {
        "name": "h3.out", "ok": False, "shape": [1, 1, 2], "dtype": "float64", "max_abs": float("inf"),
        "max_rel": float("inf"), "tolerance": 0.0, "margin": None, "layer": 3, "worst": {},
        "problem": "shape [1, 1, 2] != reference shape [1, 1, 3]",
    }  # fmt: skip
    assert compare("h3.out", got.astype(np.float32), ref, CHECKPOINT_TOL).as_dict()["dtype"] == "float32"
    assert compare("h3.out", [1.0], ref, CHECKPOINT_TOL).as_dict()["dtype"] == "list"
    assert compare("h3.out", [1.0], ref, CHECKPOINT_TOL).problem == "expected a NumPy array, got list"
