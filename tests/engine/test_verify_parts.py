"""verify.py's small parts on their own, in process: the next-token distribution's verdict against its budgets,
which failing comparison is reported first, masked scores in each convention, a subject's batch layout; and the
reference cache's one rule about mutmut. The whole of verify is tested through its runs elsewhere; these name each
rule's edge (a figure exactly at its budget passes, a NaN fails) where a run cannot aim at it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gpt2core.verification import reference_cache
from gpt2core.verification.compare import _problem, compare
from gpt2core.verification.errors import DumpError
from gpt2core.verification.verify import distribution_report, earliest, first_divergence, worst


def metrics(kl: list[float]) -> dict:
    """One case's per-position distribution figures (precision.distribution.per_position) with these KL values."""
    n = len(kl)
    return {"kl": np.array(kl), "top1": np.ones(n), "p_top": np.full(n, 0.5), "p_top_ref": np.full(n, 0.5),
            "nll": np.ones(n), "nll_ref": np.ones(n)}  # fmt: skip


def budgets(kl_mean: float, kl_max: float):
    """Budgets whose distribution() holds these KL budgets (as a calibrated class's do)."""
    return SimpleNamespace(distribution=lambda: {"kl_mean": kl_mean, "kl_max": kl_max})


@pytest.mark.parametrize(("kl", "held", "ok", "message"), [
    ([0.01, 0.03], (0.02, 0.03), True, None),  # each figure exactly at its budget passes
    ([0.01, 0.05], (0.02, 0.05), False, "next-token KL divergence mean 3.000e-02 nats exceeds its budget 2.000e-02"),
    ([0.01, 0.03], (0.05, 0.02), False, "next-token KL divergence max 3.000e-02 nats exceeds its budget 2.000e-02"),
    ([0.01, 0.05], (0.02, 0.04), False, "next-token KL divergence mean 3.000e-02 nats exceeds its budget 2.000e-02"),  # mean named first
    ([0.01, float("nan")], (0.02, 0.04), False, "next-token KL divergence mean nan nats exceeds its budget 2.000e-02"),  # NaN is no pass
])  # fmt: skip
def test_the_distribution_passes_exactly_when_both_kl_figures_are_within_their_budgets(kl, held, ok, message):
    report = distribution_report([metrics(kl[:1]), metrics(kl[1:])], budgets(*held))
    assert report["ok"] is ok and report["budget"] == {"kl_mean": held[0], "kl_max": held[1]}
    assert report["positions"] == 2 and report["kl_mean"] == pytest.approx(sum(kl) / 2, nan_ok=True)
    if message is None:
        assert report["divergence"] is None
    else:
        assert report["divergence"] == {"case": None, "mode": "chained", "name": "logits (distribution)", "message": message}


@pytest.mark.parametrize(("cases", "held"), [([], (0.02, 0.03)), ([metrics([5.0])], None)])
def test_no_distribution_or_no_budget_is_not_judged(cases, held):
    """No case gave logits, or the class is uncalibrated (float64): ok is None, neither pass nor fail."""
    report = distribution_report(cases, SimpleNamespace(distribution=lambda: None if held is None else dict(zip(("kl_mean", "kl_max"), held))))
    assert report["ok"] is None and report["divergence"] is None and report["positions"] == len(cases)


def comparison(name: str, error: float):
    """A comparison of `name`: one entry of 1.0 off by `error`, held to 1e-6 of it."""
    return compare(name, np.array([1.0 + error]), np.array([1.0]), {np.dtype(np.float64): 1e-6})


def test_the_first_failure_is_the_earliest_in_forward_order_and_the_worst_has_the_largest_margin():
    order = {"embeddings": 0, "h0.q": 1, "logits": 2}
    given = [comparison("logits", 1.0), comparison("h0.q@t=3,b=0", 1e-3), comparison("embeddings", 0.0)]
    assert earliest(given, order).name == "h0.q@t=3,b=0"  # a step's checkpoint ranks as the checkpoint
    assert first_divergence(given).name == "logits"  # the first given that failed
    assert worst(given).name == "logits" and earliest([given[2]], order) is None and first_divergence([given[2]]) is None
    tie = [comparison("h0.q", 1.0), comparison("h0.q@t=1,b=0", 1.0)]
    assert earliest(tie, order) is tie[0]  # among equals, the first given
    problem = _problem("h0.q", None, "not returned by the subject")
    assert worst([given[0], problem]) is problem  # a problem counts as infinitely bad


def test_a_left_padded_subjects_answer_is_compared_as_given():
    """A subject that lays its batch out as the case does (by default, or saying so): its array itself, padding
    entries untouched; a right-padded one's rows are moved to the case's left padding (NaN where it pads);
    an answer that is not an array is left to the comparison to name."""
    from gpt2core.verification.verify import in_case_layout

    got = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    tokens = np.array([[False, True, True], [True, True, True]])
    for subject in (SimpleNamespace(), SimpleNamespace(batch_layout="left-padded")):
        assert in_case_layout(subject, "ln_f", got, tokens) is got
    right = in_case_layout(SimpleNamespace(batch_layout="right-padded"), "ln_f", got, tokens)
    assert np.array_equal(right[0, 1:], got[0, :2]) and np.isnan(right[0, 0]).all() and np.array_equal(right[1], got[1])
    not_an_array = [[1.0]]
    assert in_case_layout(SimpleNamespace(batch_layout="right-padded"), "ln_f", not_an_array, tokens) is not_an_array


def test_a_reference_that_does_not_fit_the_case_is_named_so_in_a_layout_of_the_subjects_own():
    """A reference whose shape does not fit the case's tokens (a set broken by hand): for a left-padded subject
    (by default, or saying so) with an answer of another shape the shapes are compared first and their
    comparison names both, and an answer of the reference's own shape fails on the misfit, equal or not; for a
    subject in a layout of its own the answer cannot be laid out as the case, and the misfit is the problem named."""
    from gpt2core.verification.verify import compare_defined

    tokens = np.ones((1, 4), dtype=bool)
    got, ref = np.zeros((1, 4, 8)), np.zeros((1, 5, 8))
    tol = {np.dtype("float64"): 1e-9}
    misfit = "the reference's shape [1, 5, 8] does not fit the case's [1, 4] tokens"
    for subject in (SimpleNamespace(), SimpleNamespace(batch_layout="left-padded")):
        compared = compare_defined(subject, "ln_f", got, ref, tokens, tol, 0.0)
        assert not compared.ok and "shape [1, 4, 8] != reference shape [1, 5, 8]" in compared.problem, compared.problem
        compared = compare_defined(subject, "ln_f", ref.copy(), ref, tokens, tol, 0.0)
        assert not compared.ok and compared.problem == misfit and compared.name == "ln_f", compared  # an answer equal to it is no pass
    for layout in ("right-padded", "packed"):
        compared = compare_defined(SimpleNamespace(batch_layout=layout), "ln_f", got, ref, tokens, tol, 0.0)
        assert not compared.ok and compared.problem == misfit and compared.name == "ln_f", compared


def test_an_answer_too_short_for_its_declared_layout_is_failed_naming_the_checkpoint_and_the_row():
    """A right-padded or packed subject's checkpoint whose position axis cannot hold a row of the case fails as
    that checkpoint, with the layout's own problem (which axis, which row, how many entries it needs)."""
    from gpt2core.verification.verify import compare_defined

    tokens = np.array([[1, 1, 1, 1], [0, 0, 1, 1]], dtype=bool)
    ref = np.zeros((2, 4, 8))
    tol = {np.dtype("float64"): 1e-9}
    for layout, got, needs in (("right-padded", np.zeros((2, 3, 8)), "row 0 of the case (right-padded) needs 4"),
                               ("packed", np.zeros((5, 8)), "row 1 of the case (packed) needs 6")):  # fmt: skip
        compared = compare_defined(SimpleNamespace(batch_layout=layout), "ln_f", got, ref, tokens, tol, 0.0)
        entries = got.shape[-2]
        assert not compared.ok and compared.name == "ln_f", compared
        assert compared.problem == f"ln_f ({layout}): its position axis has {entries} entries; {needs}", compared.problem


class Case:
    """A one-row case of 2 tokens whose reference holds `ref` for every checkpoint asked."""

    def __init__(self, ref: np.ndarray):
        self.input_ids, self.attention_mask, self.ref = np.zeros((1, 2), np.int64), None, ref

    def array(self, name):
        return self.ref


def test_a_budget_only_ever_raises_a_tolerance_and_none_leaves_it_as_the_class_says():
    """compare_chained without budgets holds each checkpoint to the relative tolerance alone (an error of 1e-3
    on values of 1 fails at float64); a measured budget of 1e-2 for that checkpoint lets the same error pass."""
    from gpt2core.verification.verify import compare_chained

    ref = np.ones((1, 2, 4))
    subject = SimpleNamespace(checkpoints=lambda case: {"ln_f": ref + 1e-3})
    (plain,) = compare_chained(subject, Case(ref), ["ln_f"])
    (budgeted,) = compare_chained(subject, Case(ref), ["ln_f"], budget=lambda name: {"ln_f": 1e-2}[name])
    assert not plain.ok and budgeted.ok and budgeted.atol == 1e-2


def test_a_budget_raises_an_isolated_stages_tolerance_too():
    """compare_isolated holds each stage to its measured budget as compare_chained does: the same 1e-3 error
    fails without one and passes with 1e-2."""
    from gpt2core.verification.verify import compare_isolated

    ref = np.ones((1, 2, 4))
    subject = SimpleNamespace(stage=lambda name, case, read: read(name) + 1e-3)
    (plain,) = compare_isolated(subject, Case(ref), ["ln_f"])
    (budgeted,) = compare_isolated(subject, Case(ref), ["ln_f"], budget=lambda name: {"ln_f": 1e-2}[name])
    assert not plain.ok and budgeted.ok and budgeted.atol == 1e-2


@pytest.mark.parametrize("mode", ["chained", "isolated"])
def test_compare_case_passes_the_budget_on_to_either_mode(mode):
    """compare_case with a measured budget: the 1e-3 error above passes in either mode; an unknown mode is refused."""
    from gpt2core.verification.verify import compare_case

    ref = np.ones((1, 2, 4))
    subject = SimpleNamespace(checkpoints=lambda case: {"ln_f": ref + 1e-3}, stage=lambda name, case, read: read(name) + 1e-3)
    (plain,) = compare_case(subject, Case(ref), mode, ["ln_f"])
    (budgeted,) = compare_case(subject, Case(ref), mode, ["ln_f"], budget=lambda name: {"ln_f": 1e-2}[name])
    assert not plain.ok and budgeted.ok and budgeted.atol == 1e-2
    with pytest.raises(ValueError, match="^mode must be 'chained' or 'isolated', got 'cached'$"):
        compare_case(subject, Case(ref), "cached", ["ln_f"])


MIN = np.finfo(np.float64).min


@pytest.mark.parametrize(("convention", "engine_masks_with", "problem"), [
    ("min", MIN, None),
    ("-inf", -np.inf, None),
    ("-inf", MIN, "a masked score is not -inf (the declared convention) at batch 0, head 0, query 0, key 1: -1.7976931348623157e+308"),
    ({"at_or_below": -1e9}, -1e9, None),  # at the threshold counts
    ({"at_or_below": -1e9}, -1e8, "a masked score is not at or below -1000000000.0 (the declared convention) at batch 0, head 0, query 0, key 1: -100000000.0"),
    ("not computed", 7.0, None),  # whatever is there
])  # fmt: skip
def test_masked_scores_are_read_in_the_declared_convention(convention, engine_masks_with, problem):
    """Scores [1, 1, 2, 2] (batch, head, query, key), key 1 masked for query 0: the engine's mask value is checked
    against its convention and replaced by transformers' (the dtype's minimum); every other entry is untouched."""
    from gpt2core.verification.verify import masked_convention

    ref = np.array([[[[0.5, MIN], [0.25, 0.75]]]])
    got = np.array([[[[0.5, engine_masks_with], [0.25, 0.75]]]])
    out, said = masked_convention("h0.attn_scores", got, ref, convention)
    assert said == problem
    if problem is None:
        assert np.array_equal(out, ref) and out.dtype == got.dtype
    other = masked_convention("h0.attn_probs", got, ref, convention)  # only scores have a mask value
    assert other[0] is got and other[1] is None


@pytest.mark.parametrize("convention", ["-inf", "not computed", {"at_or_below": -1e9}])
def test_scores_of_another_shape_or_no_array_are_left_to_the_shape_comparison_in_every_convention(convention):
    """Scores [1, 1, 1, 2] against a reference [1, 1, 2, 2] (they would broadcast) and scores that are no array are
    returned as given: the comparison then names the shapes, never a mask value, and never compares a broadcast."""
    from gpt2core.verification.verify import compare_defined, masked_convention

    ref = np.array([[[[0.5, MIN], [0.25, 0.75]]]])
    got = np.array([[[[0.5, -np.inf]]]])
    for answer in (got, [[0.5, -np.inf]]):
        out, said = masked_convention("h0.attn_scores", answer, ref, convention)
        assert out is answer and said is None, (out, said)
    compared = compare_defined(SimpleNamespace(masked_scores=convention), "h0.attn_scores", got, ref, np.ones((1, 2), dtype=bool),
                               {np.dtype("float64"): 1e-9})  # fmt: skip
    assert not compared.ok and "shape [1, 1, 1, 2] != reference shape [1, 1, 2, 2]" in compared.problem, compared.problem


def test_a_subject_that_declares_no_convention_masks_with_transformers_value():
    """A subject without `masked_scores` is held to transformers' mask value (the dtype's minimum): its -1e9 at a
    masked score fails the comparison, and passes only where it declares a convention that allows it."""
    from gpt2core.verification.verify import compare_defined

    ref = np.array([[[[0.5, MIN], [0.25, 0.75]]]])
    got = np.array([[[[0.5, -1e9], [0.25, 0.75]]]])
    tokens, tol = np.ones((1, 2), dtype=bool), {np.dtype("float64"): 1e-9}
    undeclared = compare_defined(SimpleNamespace(), "h0.attn_scores", got, ref, tokens, tol)
    assert not undeclared.ok and undeclared.name == "h0.attn_scores", undeclared
    assert compare_defined(SimpleNamespace(masked_scores={"at_or_below": -1e9}), "h0.attn_scores", got, ref, tokens, tol).ok


def test_a_mask_value_where_the_reference_has_none_is_left_for_the_comparison():
    """-inf at an entry transformers does not mask, or masked entries outside `defined`: not replaced."""
    from gpt2core.verification.verify import masked_convention

    ref = np.array([[[[0.5, MIN], [0.25, 0.75]]]])
    got = np.array([[[[-np.inf, -np.inf], [0.25, 0.75]]]])
    out, said = masked_convention("h0.attn_scores", got, ref, "-inf")
    assert said is None and np.isneginf(out[0, 0, 0, 0]) and out[0, 0, 0, 1] == MIN
    undefined = np.array([[[[True, False], [True, True]]]])
    out, said = masked_convention("h0.attn_scores", got, ref, "-inf", undefined)
    assert said is None and np.isneginf(out[0, 0, 0, 1])  # an entry the model does not define stays as given


@pytest.mark.parametrize(("variable", "running"), [
    ("", False), ("stats", False), ("list_all_tests", False),  # mutmut's other runs share the cache
    ("fail", True), ("gpt2core.engine.ops.x_gelu__mutmut_3", True),  # a mutant's run (or its forced failure) does not
])  # fmt: skip
def test_a_mutants_run_is_told_apart_from_mutmuts_other_runs(variable, running):
    """What decides whether a process may write the shared reference cache: a mutant's run must not (its engine
    or capture code may be the mutant), mutmut's stats and clean runs may. (The value is passed, not set in the
    environment: mutmut's own trampolines read MUTANT_UNDER_TEST on every call.)"""
    from gpt2core.verification.reference_cache import is_a_mutants_run

    assert is_a_mutants_run(variable) is running


def test_running_a_mutant_reads_mutmuts_variable():
    """Under `pytest` the variable is unset and this process is no mutant's; under mutmut it names the mutant
    running this very test, and running_a_mutant must say so (a mutant that reads another variable fails here)."""
    import os

    from gpt2core.verification.reference_cache import is_a_mutants_run, running_a_mutant

    assert running_a_mutant() is is_a_mutants_run(os.environ.get("MUTANT_UNDER_TEST", ""))
    assert running_a_mutant({}) is False  # outside mutmut: the variable unset
    assert running_a_mutant({"MUTANT_UNDER_TEST": "gpt2core.x_f__mutmut_1"}) is True


def test_a_set_is_found_in_the_cache_by_its_dtype(tiny_dir, tmp_path):
    """is_cached looks where cached_path says the set of that dtype is kept (float32 here: a lost dtype reads float64)."""
    from gpt2core.verification.cases import cases_for
    from gpt2core.verification.model_dir import read_model_dir

    md = read_model_dir(tiny_dir)
    cases = cases_for(md, ["Hello."], False)
    path = reference_cache.cached_path(tmp_path, md, "float32", cases)
    key = reference_cache.content_key(md, "float32", cases)
    assert path == tmp_path / "references" / f"{md.path.name}-float32-{key}"  # the model's name, the dtype, the key
    path.mkdir(parents=True)
    assert not reference_cache.is_cached(tmp_path, md, "float32", cases)  # no manifest yet: sets appear whole
    (path / "manifest.json").write_text("{}")
    assert reference_cache.is_cached(tmp_path, md, "float32", cases)
    assert not reference_cache.is_cached(tmp_path, md, "float64", cases)



def another_version_of(package: str):
    """A change of the key's parts: `package` installed in another version."""

    def change(monkeypatch, reference_cache):
        real = reference_cache.installed
        monkeypatch.setattr(reference_cache, "installed", lambda name: "0.0" if name == package else real(name))

    change.__name__ = f"another_{package}_version"  # the test's id
    return change


def other_capture_code(monkeypatch, reference_cache):
    from gpt2core.verification import cases

    monkeypatch.setattr(reference_cache, "capture_module", cases)  # a module of other source


def another_thread_count(monkeypatch, reference_cache):
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)


def another_cpu(monkeypatch, reference_cache):
    monkeypatch.setattr(reference_cache, "cpu_name", lambda: "another CPU")


VERSIONS = [another_version_of(package) for package in ("numpy", "torch", "transformers")]


@pytest.mark.parametrize("change", [*VERSIONS, other_capture_code, another_thread_count, another_cpu])
def test_every_part_of_a_reference_sets_key_changes_it(tiny_dir, monkeypatch, change):
    """Beside the weights, dtype and token ids (test_report_trust): a case's name or padding, the installed version
    of numpy, torch or transformers, the capture code, torch's thread count and the CPU each make another key; the
    same inputs the same."""
    from gpt2core.verification import reference_cache
    from gpt2core.verification.cases import Case

    cases = [Case("c", np.array([[1, 2, 3], [4, 5, 6]]), np.array([[1, 1, 1], [0, 1, 1]]))]
    key = reference_cache.content_key(tiny_dir, "float64", cases)
    assert reference_cache.content_key(tiny_dir, "float64", cases) == key and len(key) == 20 and int(key, 16) >= 0
    renamed = [Case("d", cases[0].input_ids, cases[0].attention_mask)]
    unpadded = [Case("c", cases[0].input_ids, np.ones((2, 3), np.int64))]
    assert reference_cache.content_key(tiny_dir, "float64", renamed) != key
    assert reference_cache.content_key(tiny_dir, "float64", unpadded) != key
    change(monkeypatch, reference_cache)
    assert reference_cache.content_key(tiny_dir, "float64", cases) != key



def test_verify_refuses_references_made_for_other_weights(tiny_dir, stress_dir, tmp_path_factory):
    """verify_model with --references of another model's weights: refused before anything runs, naming both."""
    from support.references import reference_set

    from gpt2core.verification.errors import ReferencesError
    from gpt2core.verification.verify import verify_model

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    with pytest.raises(ReferencesError, match=f"references in {refs.root} were made for other weights"):
        verify_model(stress_dir, dtypes=["float64"], reference_dirs=[refs.root])


@pytest.mark.parametrize(("gb", "cap"), [(None, 10_000_000_000), ("2.5", 2_500_000_000), ("0", 0)])
def test_the_cache_cap_is_the_variables_gigabytes(gb, cap, monkeypatch):
    if gb is None:
        monkeypatch.delenv("GPT2CORE_REFERENCE_CACHE_GB", raising=False)
    else:
        monkeypatch.setenv("GPT2CORE_REFERENCE_CACHE_GB", gb)
    assert reference_cache.cap_bytes() == cap


def cached_set(root, name, size, used=None, manifest=True):
    """A set in the cache at root: `size` bytes of data, its last use written (or not), its manifest (or not)."""
    d = root / "references" / name
    d.mkdir(parents=True)
    if manifest:
        (d / "manifest.json").write_text(json.dumps({"model": {"path": "m"}, "dtype": "float32", "cases": []}))
    if size:
        (d / "data.npy").write_bytes(b"x" * size)
    if used is not None:
        (d / reference_cache.USED).write_text(f"{used}\n")
    return d


def test_a_set_without_its_last_use_is_as_old_as_its_manifest_or_oldest(tmp_path):
    import os

    with_manifest = cached_set(tmp_path, "with_manifest", 1)
    os.utime(with_manifest / "manifest.json", (12345.0, 12345.0))
    without = cached_set(tmp_path, "without", 1, manifest=False)
    assert reference_cache.last_used(with_manifest) == 12345.0
    assert reference_cache.last_used(without) == 0.0
    assert [e["path"] for e in reference_cache.entries(tmp_path)] == [str(without), str(with_manifest)]


def test_clear_removes_every_set_the_smallest_and_an_empty_one_too(tmp_path):
    """A set of one byte (a cap of 1 would keep it) and an empty one last (a cap of 0 is reached before it)."""
    sets = [cached_set(tmp_path, "a_one_byte", 1, manifest=False), cached_set(tmp_path, "b_empty", 0, manifest=False)]
    assert reference_cache.clear(tmp_path) == [str(d) for d in sets]
    assert not any(d.exists() for d in sets) and reference_cache.entries(tmp_path) == []


def test_the_cache_lists_its_sets_only_an_unreadable_one_as_such(tmp_path):
    """No references directory: nothing. Beside the sets, a file and a hidden directory (a lock's) are not sets;
    a set whose manifest cannot be read is listed with what is known of it."""
    assert reference_cache.entries(tmp_path / "nothing") == []
    good = cached_set(tmp_path, "good", 1, used=2)
    bad = cached_set(tmp_path, "bad", 1, used=1, manifest=False)
    (bad / "manifest.json").write_text("{not json")
    (tmp_path / "references" / "a_file").write_text("x")
    (tmp_path / "references" / ".building").mkdir()
    assert reference_cache.entries(tmp_path) == [
        {"path": str(bad), "model": "(unreadable manifest)", "dtype": "?", "cases": [], "bytes": 1 + 9 + 2, "last_used": 1.0},
        {"path": str(good), "model": "m", "dtype": "float32", "cases": [], "bytes": reference_cache.size_of(good), "last_used": 2.0},
    ]  # fmt: skip


def test_trim_removes_the_least_recently_used_until_the_rest_fit_exactly(tmp_path):
    sets = [cached_set(tmp_path, name, 98, used=i, manifest=False) for i, name in enumerate(["a", "b", "c"])]  # 100 B each
    assert [e["bytes"] for e in reference_cache.entries(tmp_path)] == [100, 100, 100]
    assert reference_cache.trim(tmp_path, cap=300) == []  # exactly at the cap: all fit
    assert reference_cache.trim(tmp_path, cap=150) == [str(sets[0]), str(sets[1])]  # 300 -> 200 -> 100
    assert [d.exists() for d in sets] == [False, False, True]


def test_trim_goes_on_when_a_set_is_already_gone(tmp_path, monkeypatch):
    """Another process may remove a set between the listing and its removal: not an error."""
    gone = {"path": str(tmp_path / "references" / "gone"), "bytes": 100}
    monkeypatch.setattr(reference_cache, "entries", lambda cache: [gone])
    assert reference_cache.trim(tmp_path, cap=0) == [gone["path"]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])  # each is the other's default somewhere (np.dtype(None), write_references)
def test_under_a_mutant_a_miss_is_captured_privately_and_a_hit_is_checked_against_the_weights(tiny_dir, stress_dir, tmp_path,
                                                                                               monkeypatch, dtype):  # fmt: skip
    """A mutant's process writes nothing shared: a miss is captured into the directory private_dir gives, named as the
    cache would name it; a set found in the cache is read with load_references' checks (one made for other weights,
    there by mistake, is refused)."""
    import shutil

    from gpt2core.verification.cases import cases_for
    from gpt2core.verification.errors import ReferencesError
    from gpt2core.verification.model_dir import read_model_dir

    monkeypatch.setattr(reference_cache, "running_a_mutant", lambda: True)
    md, cache, private = read_model_dir(tiny_dir), tmp_path / "cache", tmp_path / "private"
    cases = cases_for(md, ["Hello."], False)
    refs = reference_cache.cached_references(cache, md, dtype, cases, lambda: private, command="pytest", capped=False)
    assert refs.root == private / reference_cache.cached_path(cache, md, dtype, cases).name
    assert refs.dtype == np.dtype(dtype) and [c.name for c in refs.cases] == ["prompt0"] and not cache.exists()
    assert json.loads((refs.root / "manifest.json").read_text())["command"] == "pytest (private to a mutmut mutant)"
    stress = read_model_dir(stress_dir)
    misplaced = reference_cache.cached_path(cache, stress, dtype, cases)
    shutil.copytree(refs.root, misplaced)
    with pytest.raises(ReferencesError, match="made for other weights"):
        reference_cache.cached_references(cache, stress, dtype, cases, lambda: private, command="pytest", capped=False)


@pytest.fixture
def outside_mutmut(monkeypatch):
    """This process counts as no mutmut mutant's: reference_cache's ordinary branch (under mutmut every test runs in a
    mutant's process, which captures privately and never writes the cache)."""
    monkeypatch.setattr(reference_cache, "running_a_mutant", lambda: False)


@pytest.fixture
def verify_cache(tmp_path, monkeypatch):
    """verify's reference cache: a directory of this test's, not the user's."""
    from gpt2core.verification import verify

    monkeypatch.setattr(verify, "cache_root", lambda: tmp_path / "cache")
    return tmp_path / "cache"


def test_a_set_in_the_cache_for_other_weights_is_rebuilt_never_used(tiny_dir, stress_dir, tmp_path, outside_mutmut):
    """Outside mutmut, a set found in the cache is read with load_references' checks: one made for other weights (a
    copy put there by mistake) is removed and captured again from the right weights, never returned as it is."""
    import shutil

    from gpt2core.verification.cases import cases_for
    from gpt2core.verification.model_dir import read_model_dir

    tiny, stress, cache = read_model_dir(tiny_dir), read_model_dir(stress_dir), tmp_path / "cache"
    cases = cases_for(tiny, ["Hello."], False)
    theirs = reference_cache.cached_references(cache, tiny, "float64", cases, lambda: None, command="pytest", capped=False)
    misplaced = reference_cache.cached_path(cache, stress, "float64", cases)
    shutil.copytree(theirs.root, misplaced)
    refs = reference_cache.cached_references(cache, stress, "float64", cases, lambda: None, command="pytest", capped=False)
    assert refs.root == misplaced
    made_for = json.loads((misplaced / "manifest.json").read_text())["model"]["weights_sha256"]
    assert made_for != json.loads((theirs.root / "manifest.json").read_text())["model"]["weights_sha256"]


def test_a_miss_is_captured_into_the_cache_in_its_dtype_by_its_command_and_kept_by_the_cap(tiny_dir, tmp_path, monkeypatch,
                                                                                          outside_mutmut):
    """Outside mutmut, a miss is captured into the cache at cached_path, in the asked dtype (float32: not the default),
    its manifest naming the command that made it; with `capped`, the trim that follows never removes the set just
    made, even when the cap (0 here) is below it."""
    from gpt2core.verification.cases import cases_for
    from gpt2core.verification.model_dir import read_model_dir

    monkeypatch.setenv("GPT2CORE_REFERENCE_CACHE_GB", "0")
    md, cache = read_model_dir(tiny_dir), tmp_path / "cache"
    cases = cases_for(md, ["Hello."], False)
    older = cached_set(cache, "older", 10, used=1)
    refs = reference_cache.cached_references(cache, md, "float32", cases, lambda: None, command="the command", capped=True)
    assert refs.root == reference_cache.cached_path(cache, md, "float32", cases) and refs.dtype == np.float32
    assert json.loads((refs.root / "manifest.json").read_text())["command"] == "the command"
    assert not older.exists() and [e["path"] for e in reference_cache.entries(cache)] == [str(refs.root)]


def test_a_set_another_process_built_while_this_one_waited_is_read_not_captured_again(tiny_dir, tmp_path, monkeypatch,
                                                                                     outside_mutmut):
    """Two processes missing the same set: the second takes the lock after the first built it, and reads it."""
    from gpt2core.verification.cases import cases_for
    from gpt2core.verification.model_dir import read_model_dir

    md, cache = read_model_dir(tiny_dir), tmp_path / "cache"
    cases = cases_for(md, ["Hello."], False)
    real_build_once, real_write = reference_cache.build_once, reference_cache.write_references

    def the_other_process_builds_first(path, is_built, build):
        real_write(md, path, cases, "float64", command="the other process")
        return real_build_once(path, is_built, build)

    def captured_again(*args, **kwargs):
        raise AssertionError("a set already built was captured again")

    monkeypatch.setattr(reference_cache, "build_once", the_other_process_builds_first)
    monkeypatch.setattr(reference_cache, "write_references", captured_again)
    refs = reference_cache.cached_references(cache, md, "float64", cases, lambda: None, command="this one", capped=False)
    assert json.loads((refs.root / "manifest.json").read_text())["command"] == "the other process"


def test_the_cpu_is_named_by_cpuinfo_whole_else_by_the_platform(tmp_path, monkeypatch):
    """A model name may hold a colon itself; without cpuinfo (macOS, a container without /proc) the platform's
    processor names the CPU, or "unknown" where it says nothing."""
    import platform
    import re
    from pathlib import Path

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Vendor CPU: Model 9 @ 2.0GHz \nflags\t\t: fpu\n")
    assert reference_cache.cpu_name(cpuinfo) == "Vendor CPU: Model 9 @ 2.0GHz"
    here = re.search(r"^model name\s*: (.*)$", Path("/proc/cpuinfo").read_text(), re.M)  # this machine's, by default
    assert reference_cache.cpu_name() == (here.group(1).strip() if here else platform.processor() or "unknown")
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert reference_cache.cpu_name(tmp_path / "none") == "arm"
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert reference_cache.cpu_name(tmp_path / "none") == "unknown"


def test_a_verify_run_that_cannot_fit_is_refused_as_this_verify_run_before_anything_loads(tiny_dir, monkeypatch):
    from gpt2core.verification import memory, verify

    monkeypatch.setattr(memory, "available_bytes", lambda: 1)
    monkeypatch.setattr(verify, "reset_peak_rss", lambda: pytest.fail("went on past the memory check"))
    with pytest.raises(memory.MemoryNeeded, match=r"^this verify run needs about \d+\.\d GB of memory \("):
        verify.verify_model(tiny_dir)


class Required(Exception):
    """transformers was required (the fake require_transformers)."""


class Reached(Exception):
    """The run went on past the check without requiring transformers (the fake reset_peak_rss)."""


def raising(error):
    """A stand-in that raises `error` when called."""

    def stand_in(*args, **kwargs):
        raise error

    return stand_in


@pytest.mark.parametrize(("cached", "cache", "required"), [
    ({"float32": True, "float64": True}, True, False),  # every set in the cache: transformers is never imported
    ({"float32": True, "float64": False}, True, True),  # one set to capture
    ({"float32": False, "float64": True}, True, True),
    ({"float32": False, "float64": False}, True, True),
    ({"float32": True, "float64": True}, False, True),  # --no-cache captures whatever the cache holds
])  # fmt: skip
def test_transformers_is_required_exactly_when_a_reference_set_is_to_be_captured(tiny_dir, monkeypatch, cached, cache,
                                                                                  required):  # fmt: skip
    """verify asks for transformers (a clear error where it is not installed) before it reads its memory baseline,
    only when it will capture: not on a cache hit in every dtype, nor with --references (test below)."""
    from gpt2core.verification import hf, verify

    monkeypatch.setattr(hf, "require_transformers", raising(Required()))
    monkeypatch.setattr(verify, "reset_peak_rss", raising(Reached()))
    monkeypatch.setattr(verify, "is_cached", lambda root, model_dir, dtype, cases: cached[np.dtype(dtype).name])
    with pytest.raises(Required if required else Reached):
        verify.verify_model(tiny_dir, cache=cache)


def test_transformers_is_not_required_to_verify_against_given_references(tiny_dir, tmp_path_factory, monkeypatch):
    from support.references import reference_set

    from gpt2core.verification import hf, verify

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    monkeypatch.setattr(hf, "require_transformers", lambda: pytest.fail("transformers required with --references"))
    monkeypatch.setattr(verify, "reset_peak_rss", raising(Reached()))
    with pytest.raises(Reached):
        verify.verify_model(tiny_dir, dtypes=["float64"], reference_dirs=[refs.root])


def test_verify_captures_a_miss_into_the_cache_naming_its_command_then_trims_the_cache(tiny_dir, verify_cache, monkeypatch,
                                                                                       outside_mutmut):
    """verify's own cache (capped, unlike the test suites'): a set it captures records the command that made it, and
    the cache is then trimmed to its cap, least recently used first, the new set kept."""
    from gpt2core.verification import verify

    monkeypatch.setenv("GPT2CORE_REFERENCE_CACHE_GB", "0")
    older = cached_set(verify_cache, "older", 10, used=1)
    report = verify.verify_model(tiny_dir, dtypes=["float64"], prompts=["Hello."], command="gpt2core verify --model tiny")
    made = Path(report["runs"][0]["references"])
    assert made.parent == verify_cache / "references" and not older.exists()
    assert json.loads((made / "manifest.json").read_text())["command"] == "gpt2core verify --model tiny"


def test_under_a_mutant_verify_captures_a_miss_privately_and_leaves_the_cache_alone(tiny_dir, verify_cache, monkeypatch):
    from gpt2core.verification import verify

    monkeypatch.setattr(reference_cache, "running_a_mutant", lambda: True)
    report = verify.verify_model(tiny_dir, dtypes=["float64"], prompts=["Hello."])
    assert report["runs"][0]["verdict"] == "PASS" and not verify_cache.exists()


def test_without_the_cache_verify_captures_each_dtype_into_a_temporary_set(tiny_dir, verify_cache):
    """--no-cache: each dtype's set (float64 here: not write_references' default) captured for this run only."""
    from gpt2core.verification import verify

    report = verify.verify_model(tiny_dir, dtypes=["float64"], prompts=["Hello."], cache=False)
    assert [(r["dtype"], r["verdict"], r["references"]) for r in report["runs"]] == [("float64", "PASS", "(temporary, built by this run)")]
    assert not verify_cache.exists()
    memory = report["memory"]  # its figures agree with each other; the bound applies to gpt2core's engine from 1 GiB of weights
    assert memory["peak_over_baseline_bytes"] == memory["peak_rss_bytes"] - memory["baseline_rss_bytes"] >= 0
    assert memory["within_bound"] is (memory["peak_over_baseline_bytes"] <= memory["bound_bytes"])
    assert memory["own_engine"] is True and memory["bound_applies"] is False  # the default factory, the tiny shape
    assert type(memory["children_peak_rss_bytes"]) is int and memory["children_peak_rss_bytes"] >= 0


def test_verify_measures_a_precision_class_budgets_on_the_model_and_records_its_command(tiny_dir, verify_cache, outside_mutmut):
    """A subject in a class whose budgets the set does not hold yet (bfloat16: a float32 set is written with only
    float32's): verify measures them on the model, stores them beside the set, naming the command."""
    from support.engine_memo import numpy_subject

    from gpt2core.verification import verify
    from gpt2core.verification.precision import budgets

    def in_bfloat16_class(model_dir, dtype):
        subject = numpy_subject(model_dir, dtype)
        subject.precision = "bfloat16"  # judged against bfloat16's budgets: float32 arithmetic is well inside them
        return subject

    report = verify.verify_model(tiny_dir, factory=in_bfloat16_class, dtypes=["float32"], prompts=["Hello."], command="the command")
    root = Path(report["runs"][0]["references"])
    assert report["verdict"] == "PASS" and json.loads(budgets.path_of(root, "bfloat16").read_text())["command"] == "the command"
    assert report["memory"]["own_engine"] is False  # another factory: the memory bound is gpt2core's engine's only


def test_given_references_of_a_dtype_not_asked_for_are_passed_over_not_the_end(tiny_dir, tmp_path_factory):
    """--references float32 float64 with --dtype float64: the float32 set is passed over and the float64 one runs."""
    from support.references import reference_set

    from gpt2core.verification.verify import verify_model

    sets = [reference_set(tiny_dir, dtype, tmp_path_factory).root for dtype in (np.float32, np.float64)]
    report = verify_model(tiny_dir, dtypes=["float64"], reference_dirs=sets)
    assert [(r["dtype"], r["references"]) for r in report["runs"]] == [("float64", str(sets[1]))]


def test_given_references_of_no_dtype_asked_for_are_an_error_naming_them_and_the_dtypes(tiny_dir, tmp_path_factory):
    from support.references import reference_set

    from gpt2core.verification.verify import verify_model

    root = reference_set(tiny_dir, np.float64, tmp_path_factory).root
    with pytest.raises(ValueError, match=re.escape(f"no reference set in {[str(root)]} has dtype float32 or float16") + "$"):
        verify_model(tiny_dir, dtypes=["float32", "float16"], reference_dirs=[root])


def test_the_memory_bound_holds_at_its_edges(tiny_dir, tmp_path_factory, monkeypatch):
    """The run's growth over its baseline exactly at the bound is within it, whatever the baseline; the bound applies
    to gpt2core's engine from exactly BOUND_FROM_BYTES of weights. The plan and the process's readings are set here
    (a large baseline, a peak of baseline + bound); the report's top-level peak is the memory's."""
    from support.references import short_reference_set

    from gpt2core.verification import verify

    refs = short_reference_set(tiny_dir, np.float64, tmp_path_factory)  # the cases do not matter here: the short ones
    real_plan, baseline, plans = verify.run_memory, 10**12, []

    def plan_at_the_edge(*args):
        plans.append(dict(real_plan(*args), weights_bytes=verify.BOUND_FROM_BYTES))
        return plans[-1]

    monkeypatch.setattr(verify, "run_memory", plan_at_the_edge)
    monkeypatch.setattr(verify, "check_fits", lambda plan, what: None)  # the plan's weights are not the machine's
    monkeypatch.setattr(verify, "current_rss_bytes", lambda: baseline)
    monkeypatch.setattr(verify, "peak_rss_bytes", lambda: baseline + plans[-1]["bound_bytes"])
    report = verify.verify_model(tiny_dir, dtypes=["float64"], reference_dirs=[refs.root])
    memory = report["memory"]
    assert memory["peak_over_baseline_bytes"] == memory["bound_bytes"] and memory["within_bound"] is True
    assert memory["bound_applies"] is True and report["peak_rss_bytes"] == memory["peak_rss_bytes"] == baseline + memory["bound_bytes"]


def greedy_case(expected: list[list[int]], mask: list[list[int]] | None):
    """A case of 3 prompt positions (mask: its attention mask) whose reference greedy ids are `expected`."""
    ids = np.array(expected, np.int64)[:, :3]
    return SimpleNamespace(name="g", input_ids=ids, attention_mask=None if mask is None else np.array(mask),
                           greedy=(len(expected[0]) - 3, np.array(expected, np.int64)))  # fmt: skip


def greedy_subject(ids, layout: str | None = None):
    generate = ids if callable(ids) else (lambda case, n: ids)
    return SimpleNamespace(generate=generate, **({} if layout is None else {"batch_layout": layout}))


def test_compare_greedy_rows_for_every_outcome():
    """compare_greedy's row for each outcome, whole: equal (padding not compared, a right-padded engine's rows
    laid out first), the first differing token, ids of another shape, and a step file that cannot be read."""
    from gpt2core.verification.verify import compare_greedy

    expected = [[7, 8, 9, 1, 2], [0, 8, 9, 3, 4]]  # row 1: one padding position, then 8 9 and two new tokens
    case = greedy_case(expected, [[1, 1, 1], [0, 1, 1]])
    padding_differs = [[7, 8, 9, 1, 2], [5, 8, 9, 3, 4]]
    assert compare_greedy(greedy_subject(np.array(padding_differs)), case) == {"case": "g", "ok": True, "message": "2 tokens equal"}
    right = [[7, 8, 9, 1, 2], [8, 9, 3, 4, 0]]
    assert compare_greedy(greedy_subject(np.array(right), "right-padded"), case)["ok"]
    new_differs = [[7, 8, 9, 1, 2], [0, 8, 9, 3, 6]]
    assert compare_greedy(greedy_subject(np.array(new_differs)), case) == {
        "case": "g", "ok": False, "message": "row 1 position 4: token 6, transformers' 4"}
    assert compare_greedy(greedy_subject(np.array(expected)[:, :4]), case) == {
        "case": "g", "ok": False, "message": "ids of shape [2, 4], transformers' [2, 5]"}

    def unreadable(case, n):
        raise DumpError("greedy.npy: not a .npy file")

    assert compare_greedy(greedy_subject(unreadable), case) == {"case": "g", "ok": False, "message": "greedy.npy: not a .npy file"}
    unmasked = greedy_case(expected, None)  # without a mask every prompt position is a token
    assert compare_greedy(greedy_subject(np.array(padding_differs)), unmasked) == {
        "case": "g", "ok": False, "message": "row 1 position 0: token 5, transformers' 0"}


class Decoder:
    """A subject whose cached decoding returns the reference's logits at each position (a correct engine), after
    an unrelated request that yields nothing; records the split each request was given."""

    def __init__(self, logits: np.ndarray, extra: int = 0):
        self.logits, self.extra, self.requests = logits, extra, []

    def decode(self, case, split):
        self.requests.append((case.name, split))
        if case.name.endswith("-unrelated"):
            return iter(())
        end = self.logits.shape[1] + self.extra  # extra: steps past the case's positions, repeating the last
        return ({"logits": self.logits[:, min(t, end - self.extra - 1) :][:, :1]} for t in range(split, end))


def logits_case():
    """Reference logits [1, 4, 5] and a one-row case of 4 positions, no mask, whose every checkpoint reads them."""
    logits = np.random.default_rng(0).standard_normal((1, 4, 5))
    case = SimpleNamespace(name="c", input_ids=np.zeros((1, 4), np.int64), attention_mask=None, position_ids=None,
                           array=lambda name: logits)  # fmt: skip
    return logits, case


def test_compare_cached_decodes_from_the_split_it_is_given_else_half_way():
    from gpt2core.verification.verify import compare_cached

    logits, case = logits_case()
    given = Decoder(logits)
    out = compare_cached(given, case, ["logits"], 5, split=3)
    assert [(c.name, c.ok) for c in out] == [("logits@t=3,b=0", True)] and given.requests == [("c-unrelated", 4), ("c", 3)]
    default = Decoder(logits)
    out = compare_cached(default, case, ["logits"], 5)
    assert [(c.name, c.ok) for c in out] == [("logits@t=2,b=0", True), ("logits@t=3,b=0", True)], out
    assert default.requests == [("c-unrelated", 4), ("c", 2)]


def test_compare_cached_fails_a_step_past_the_cases_positions_by_its_own_name():
    from gpt2core.verification.verify import compare_cached

    logits, case = logits_case()
    out = compare_cached(Decoder(logits, extra=2), case, ["logits"], 5, split=3)
    assert [(c.name, c.ok) for c in out] == [("logits@t=3,b=0", True), ("logits@t=4", False)], out
    assert out[1].problem == ("a decoding step past the case's 4 positions (decode yielded more than the 1 steps of "
                              "positions 3 .. 3)"), out[1].problem  # fmt: skip


def test_compare_cached_fails_the_first_step_left_out_by_its_position():
    """Two steps of three (positions 1 .. 3 after a split at 1): the steps given are compared, and the first
    position not decoded fails, naming how many steps came and how many the positions need."""
    from gpt2core.verification.verify import compare_cached

    logits, case = logits_case()
    out = compare_cached(Decoder(logits, extra=-1), case, ["logits"], 5, split=1)
    assert [(c.name, c.ok) for c in out] == [("logits@t=1,b=0", True), ("logits@t=2,b=0", True), ("logits@t=3", False)], out
    assert out[2].problem == "decode yielded 2 step(s); positions 1 .. 3 need 3", out[2].problem


def test_compare_isolated_goes_on_past_a_stage_file_that_cannot_be_read():
    """A broken stage file fails its own checkpoint, by the file's problem; the stages after it are still compared."""
    from gpt2core.verification.verify import compare_isolated

    logits, case = logits_case()

    def stage(name, case, ref):
        if name == "ln_f":
            raise DumpError("stage/ln_f.npy: not a .npy file")
        return ref(name).copy()

    out = compare_isolated(SimpleNamespace(stage=stage), case, ["ln_f", "logits"])
    assert [(c.name, c.ok, c.problem) for c in out] == [("ln_f", False, "stage/ln_f.npy: not a .npy file"),
                                                       ("logits", True, None)], out  # fmt: skip


class UnreadableLnF(dict):
    """A subject's record whose file for 'ln_f' cannot be read: reading it raises DumpError naming `path`."""

    def __init__(self, path: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.path = path

    def __getitem__(self, name):
        if name == "ln_f":
            raise DumpError(f"{self.path}: not a .npy file")
        return super().__getitem__(name)


def test_compare_chained_goes_on_past_a_checkpoint_not_returned_and_one_that_cannot_be_read():
    """Each checkpoint the subject leaves out or cannot give fails by its own name and problem; those after it are
    still compared."""
    from gpt2core.verification.verify import compare_chained

    logits, case = logits_case()

    record = UnreadableLnF("ln_f.npy", ln_f=None, logits=logits.copy())
    out = compare_chained(SimpleNamespace(checkpoints=lambda case: record), case, ["h0.ln_1", "ln_f", "logits"])
    assert [(c.name, c.ok, c.problem) for c in out] == [("h0.ln_1", False, "not returned by the subject"),
                                                       ("ln_f", False, "ln_f.npy: not a .npy file"),
                                                       ("logits", True, None)], out  # fmt: skip


def test_compare_cached_names_a_checkpoint_not_returned_and_one_that_cannot_be_read():
    from gpt2core.verification.verify import compare_cached

    logits, case = logits_case()

    class Partial(Decoder):
        def decode(self, case, split):
            return (UnreadableLnF("step/ln_f.npy", rec, ln_f=None) for rec in super().decode(case, split))

    out = compare_cached(Partial(logits), case, ["h0.ln_1", "ln_f", "logits"], 5, split=3)
    assert [(c.name, c.ok, c.problem) for c in out] == [
        ("h0.ln_1@t=3,b=0", False, "not returned by the subject"),
        ("ln_f@t=3,b=0", False, "step/ln_f.npy: not a .npy file"), ("logits@t=3,b=0", True, None)], out


class KeysDecoder:
    """A subject whose cached decoding returns checkpoint 'h0.k' as its cache holds it: [B, H, t + 1, D] at step
    t, from the reference (`spoil`: a function of (keys, t) applied first)."""

    def __init__(self, keys: np.ndarray, spoil=lambda keys, t: keys):
        self.keys, self.spoil = keys, spoil

    def decode(self, case, split):
        if case.name.endswith("-unrelated"):
            return iter(())
        return ({"h0.k": self.spoil(self.keys[:, :, : t + 1].copy(), t)} for t in range(split, self.keys.shape[2]))


def test_compare_cached_compares_a_steps_keys_at_token_positions_only():
    """Row 1 of a left-padded case has padding at position 0: a cache holding anything there passes; one key
    position short is named; a token key that differs fails."""
    from gpt2core.verification.verify import compare_cached

    keys = np.random.default_rng(0).standard_normal((2, 2, 4, 5))  # [B, H, T, D]
    case = SimpleNamespace(name="c", input_ids=np.zeros((2, 4), np.int64), attention_mask=np.array([[1, 1, 1, 1], [0, 1, 1, 1]]),
                           position_ids=None, array=lambda name: keys)  # fmt: skip

    def padding_spoiled(k, t):
        k[1, :, 0] = 1e3
        return k

    out = compare_cached(KeysDecoder(keys, padding_spoiled), case, ["h0.k"], 5, split=2)
    assert [(c.name, c.ok) for c in out] == [(f"h0.k@t={t},b={b}", True) for t in (2, 3) for b in (0, 1)], out
    out = compare_cached(KeysDecoder(keys, lambda k, t: k[:, :, :t]), case, ["h0.k", "h0.v"], 5, split=3)
    assert [(c.name, c.problem) for c in out] == [(name, problem) for b in (0, 1) for name, problem in [
        (f"h0.k@t=3,b={b}", "3 key position(s): a decoding step's k is its cache's, positions 0 .. 3 (4)"),
        (f"h0.v@t=3,b={b}", "not returned by the subject")]], out  # fmt: skip
    unmasked = SimpleNamespace(**dict(vars(case), attention_mask=None))
    out = compare_cached(KeysDecoder(keys), unmasked, ["h0.k"], 5, split=3)
    assert [(c.name, c.ok) for c in out] == [("h0.k@t=3,b=0", True), ("h0.k@t=3,b=1", True)], out

    def token_spoiled(k, t):
        k[1, :, 1] += 1e-3
        return k

    out = compare_cached(KeysDecoder(keys, token_spoiled), case, ["h0.k"], 5, split=3)
    assert [(c.name, c.ok) for c in out] == [("h0.k@t=3,b=0", True), ("h0.k@t=3,b=1", False)], out


class StepsDecoder:
    """A subject whose cached decoding returns, at step t, each of `arrays` [B, H, T, T] at query t over keys
    0 .. t (with `spoil(part)` applied), in masked-score convention `masked_scores`."""

    def __init__(self, arrays: dict, spoil=lambda part: part, masked_scores: str = "min"):
        self.arrays, self.spoil, self.masked_scores = arrays, spoil, masked_scores

    def decode(self, case, split):
        if case.name.endswith("-unrelated"):
            return iter(())
        T = case.input_ids.shape[1]
        return ({n: self.spoil(a[:, :, t : t + 1, : t + 1].copy()) for n, a in self.arrays.items()} for t in range(split, T))


def test_compare_cached_leaves_a_steps_padding_keys_out_of_scores_and_probabilities():
    """Row 1 of a left-padded case has padding at key 0: whatever a step's scores and probabilities hold there
    passes, in the "min" convention and the "-inf" one; a k that is not an array is a failure, not a crash."""
    from gpt2core.verification.verify import compare_cached

    rng = np.random.default_rng(0)
    mask = np.array([[1, 1, 1, 1], [0, 1, 1, 1]])
    minimum = np.finfo(np.float64).min
    scores = rng.standard_normal((2, 1, 4, 4))
    scores[:, :, np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]] = minimum  # causal
    scores[1, :, :, 0] = minimum  # the padding key
    probs = rng.random((2, 1, 4, 4))
    refs = {"h0.attn_scores": scores, "h0.attn_probs": probs}
    case = SimpleNamespace(name="c", input_ids=np.zeros((2, 4), np.int64), attention_mask=mask, position_ids=None,
                           array=lambda name: refs[name])  # fmt: skip
    names = list(refs)
    for fill, convention in [(123.0, "min"), (-np.inf, "-inf"), (123.0, "-inf")]:  # padding need not follow the convention

        def padding_filled(part, fill=fill):
            part[1, :, :, 0] = fill
            return part

        out = compare_cached(StepsDecoder(refs, padding_filled, convention), case, names, 5, split=2)
        assert all(c.ok for c in out) and len(out) == 2 * 2 * 2, [c.message() for c in out if not c.ok]
    not_arrays = SimpleNamespace(decode=lambda case, split: iter(() if case.name.endswith("-unrelated") else [{"h0.k": [[1.0]]}]))
    one_row = SimpleNamespace(name="r", input_ids=np.zeros((1, 2), np.int64), attention_mask=None, position_ids=None,
                              array=lambda name: np.zeros((1, 1, 2, 3)))  # fmt: skip
    (out,) = compare_cached(not_arrays, one_row, ["h0.k"], 5, split=1)
    assert not out.ok and out.problem == "expected a NumPy array, got list", out.message()


def test_distribution_logits_are_the_subjects_in_the_cases_layout_or_none_when_they_cannot_be_read():
    """The logits the distribution metrics read: a right-padded engine's rows laid out as the case's (left-padded);
    None for logits of another shape or an integer dtype, not an array, with a NaN at a token, or that do not fit
    the declared layout; NaN at padding is no obstacle (padding is not model output)."""
    from gpt2core.verification.verify import distribution_logits

    mask = np.array([[0, 1, 1], [1, 1, 1]])
    case = SimpleNamespace(input_ids=np.zeros((2, 3), np.int64), attention_mask=mask)
    ref = np.random.default_rng(0).standard_normal((2, 3, 4))
    right = np.stack([np.concatenate([ref[0, 1:], np.full((1, 4), 9.0)]), ref[1]])  # row 0's tokens first
    got = distribution_logits(SimpleNamespace(batch_layout="right-padded"), right, ref, case)
    assert got.shape == ref.shape and np.array_equal(got[mask == 1], ref[mask == 1]), got
    left = SimpleNamespace()
    padding_nan = ref.copy()
    padding_nan[0, 0] = np.nan
    assert distribution_logits(left, padding_nan, ref, case) is padding_nan
    token_nan = ref.copy()
    token_nan[1, 2, 3] = np.nan
    for unreadable in (ref[:, :2], ref.astype(np.int64), ref.tolist(), token_nan):
        assert distribution_logits(left, unreadable, ref, case) is None
    assert distribution_logits(SimpleNamespace(batch_layout="right-padded"), ref[0], ref, case) is None  # 2 axes, not 3
