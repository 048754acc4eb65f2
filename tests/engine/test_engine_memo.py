"""support/engine_memo.py: what mutmut's unmutated runs computed, handed to a mutant's session only where the mutant
cannot change it. Left out of mutmut's selection (setup.cfg): these tests set MUTANT_UNDER_TEST themselves."""

from __future__ import annotations

import configparser
import fnmatch
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from support import engine_memo
from support.references import short_reference_set

from gpt2core.verification.errors import ReferencesError
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.reference_set import load_references

ROOT = Path(__file__).resolve().parents[2]
VERIFY_MUTANT = "gpt2core.verification.verify.x_verify_references__mutmut_1"
ENGINE_MUTANT = "gpt2core.engine.model.x_lm_head__mutmut_1"


@pytest.fixture
def fresh(monkeypatch):
    """engine_memo with nothing kept, and no mutmut run or fault in the environment."""
    monkeypatch.setattr(engine_memo, "_subjects", {})
    monkeypatch.setattr(engine_memo, "_kept", {})
    monkeypatch.setattr(engine_memo, "_kept_bytes", [0])
    monkeypatch.delenv("MUTANT_UNDER_TEST", raising=False)
    monkeypatch.delenv("GPT2CORE_FAULT", raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def sampled_case(tiny_dir, tmp_path_factory):
    """A case of the short reference set that records a sampled generation: (case, settings, path ids)."""
    refs = short_reference_set(tiny_dir, np.float64, tmp_path_factory)
    case = max((c for c in refs.cases if getattr(c, "sampling", None) is not None), key=lambda c: c.input_ids.shape[1])
    assert case.input_ids.shape[1] > 1, case.input_ids.shape  # a decoding step after the first position
    return case, *case.sampling


def answers(subject, case, settings, path):
    """Every kept answer of `subject` on the case."""
    return {
        "checkpoints": subject.checkpoints(case),
        "decode": list(subject.decode(case, case.input_ids.shape[1] - 1)),  # the last position: one step
        "generate": subject.generate(case, 2),
        "sample_scores": subject.sample_scores(case, settings, path),
    }


def assert_same(a, b, where="answer"):
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b), (where, a.shape, b.shape)
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b), (where, sorted(a), sorted(b))
        for name in a:
            assert_same(a[name], b[name], f"{where}[{name!r}]")
    else:
        assert len(a) == len(b), (where, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")


def mutated_modules() -> list[str]:
    """The modules of src/gpt2core mutmut mutates: every one setup.cfg's do_not_mutate does not name."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    excluded = cfg["mutmut"]["do_not_mutate"].split()
    modules = []
    for path in sorted((ROOT / "src" / "gpt2core").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        if not any(fnmatch.fnmatch(relative, pattern) for pattern in excluded):
            modules.append(".".join(path.relative_to(ROOT / "src").with_suffix("").parts))
    return modules


def test_the_mutated_code_the_engines_answers_run_is_what_engine_code_names(tiny_dir, sampled_case, fresh):
    """Every function of a mutated module that loading the subject or any kept answer runs is one a mutant of
    which makes engine_memo compute afresh: otherwise a mutant there would be tested on unmutated answers."""
    case, settings, path = sampled_case
    mutated = set(mutated_modules())
    assert "gpt2core.verification.verify" in mutated and "gpt2core.engine.model" in mutated, sorted(mutated)
    ran: set[tuple[str, str]] = set()

    def trace(frame, event, arg):
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            if module in mutated:
                ran.add((module, frame.f_code.co_name))

    sys.setprofile(trace)
    try:
        answers(engine_memo.engine_subject(tiny_dir, "float64"), case, settings, path)
    finally:
        sys.setprofile(None)
    assert ("gpt2core.engine.model", "forward") in ran, sorted(ran)
    assert ("gpt2core.verification.sampling", "step_name") in ran, sorted(ran)
    outside = sorted(
        f"{m}.{f}" for m, f in ran if not m.startswith("gpt2core.engine.") and not f.startswith("<")
        and not any(f"{m}.x_{f}__mutmut_".startswith(code) for code in engine_memo.ENGINE_CODE)
    )  # fmt: skip
    assert outside == [], f"mutated code the engine's answers run that ENGINE_CODE does not name: {outside}"


def test_outside_mutmut_or_with_a_fault_the_subject_is_gpt2cores_own(tiny_dir, fresh):
    assert type(engine_memo.numpy_subject(tiny_dir, "float64")) is NumpySubject
    fresh.setenv("MUTANT_UNDER_TEST", "fail")
    assert type(engine_memo.numpy_subject(tiny_dir, "float64")) is NumpySubject
    fresh.setenv("MUTANT_UNDER_TEST", VERIFY_MUTANT)
    fresh.setenv("GPT2CORE_FAULT", "softmax_no_max_subtraction")
    assert type(engine_memo.numpy_subject(tiny_dir, "float64")) is NumpySubject
    assert engine_memo._kept == {} and engine_memo._subjects == {}


def test_a_mutant_outside_the_engine_is_handed_copies_of_what_the_unmutated_run_computed(tiny_dir, sampled_case, fresh):
    case, settings, path = sampled_case
    fresh.setenv("MUTANT_UNDER_TEST", "stats")
    stored = engine_memo.numpy_subject(tiny_dir, "float64")
    computed = answers(stored, case, settings, path)
    assert len(engine_memo._kept) == 4, len(engine_memo._kept)
    assert engine_memo.numpy_subject(tiny_dir, "float64").subject is not stored.subject  # stats: loaded afresh
    fresh.setenv("MUTANT_UNDER_TEST", VERIFY_MUTANT)
    served = engine_memo.numpy_subject(tiny_dir, "float64")
    assert served.subject is stored.subject  # the model loaded once
    as_verify_model_calls_it = engine_memo.numpy_subject(read_model_dir(tiny_dir), np.float64)
    assert as_verify_model_calls_it.subject is stored.subject
    fresh.setattr(stored.subject, "checkpoints", None)  # the engine is not asked again: every answer is kept
    fresh.setattr(stored.subject, "decode", None)
    fresh.setattr(stored.subject, "generate", None)
    fresh.setattr(stored.subject, "sample_scores", None)
    first = answers(served, case, settings, path)
    assert_same(first, computed)
    first["checkpoints"]["logits"][...] = 0.0  # a mutant writing into what it was handed changes nothing after it
    first["decode"][0]["logits"][...] = 0.0
    assert_same(answers(served, case, settings, path), computed)
    other = case.input_ids.copy()
    other[0, 0] = (other[0, 0] + 1) % 50257  # other ids: not kept, so the engine is asked
    changed = type("Case", (), {"input_ids": other, "attention_mask": case.attention_mask})()
    with pytest.raises(TypeError):
        served.checkpoints(changed)


def test_a_mutant_of_the_engine_or_of_step_name_is_handed_nothing_kept(tiny_dir, sampled_case, fresh):
    case, settings, path = sampled_case
    fresh.setenv("MUTANT_UNDER_TEST", "stats")
    stored = engine_memo.numpy_subject(tiny_dir, "float64")
    answers(stored, case, settings, path)
    for mutant in (ENGINE_MUTANT, "gpt2core.verification.sampling.x_step_name__mutmut_2"):
        fresh.setenv("MUTANT_UNDER_TEST", mutant)
        subject = engine_memo.numpy_subject(tiny_dir, "float64")
        assert subject.subject is not stored.subject  # loaded afresh: the loader is the engine's
        calls = []
        fresh.setattr(subject.subject, "checkpoints", lambda c: calls.append(c) or {})
        assert subject.checkpoints(case) == {} and calls == [case], mutant


def test_kept_reference_arrays_are_copies_read_again_when_their_file_changes(tiny_dir, tmp_path_factory, fresh):
    fresh.setenv("MUTANT_UNDER_TEST", "stats")
    root = tmp_path_factory.mktemp("kept") / "set"
    shutil.copytree(short_reference_set(tiny_dir, np.float64, tmp_path_factory).root, root)
    refs = engine_memo.keep_arrays(load_references(root, tiny_dir))
    case = refs.cases[0]
    name = next(iter(case.files))
    first = case.array(name)
    fresh.setenv("MUTANT_UNDER_TEST", VERIFY_MUTANT)
    kept = case.array(name)
    assert np.array_equal(kept, first) and kept is not first
    kept[...] = 0
    assert np.array_equal(case.array(name), first)
    (root / case.files[name]["file"]).write_bytes(b"spoiled")  # changed: read (and checked) again
    with pytest.raises(ReferencesError, match="altered or truncated"):
        case.array(name)


def test_what_one_process_kept_another_absorbs_whole(fresh, tmp_path):
    values = {
        "a" * 64: np.arange(6.0).reshape(2, 3),
        "b" * 64: {"logits": np.ones((1, 2, 3)), "h0.out": np.zeros(4, np.float32)},
        "c" * 64: [{"logits": np.full(3, 2.0)}, {"logits": np.full(3, 3.0), "h1.attn_probs": np.eye(2)}],
    }
    engine_memo._kept.update(values)
    engine_memo.export(tmp_path / "kept.npz")
    fresh.setattr(engine_memo, "_kept", {})
    engine_memo.absorb(tmp_path / "kept.npz")
    assert sorted(engine_memo._kept) == sorted(values)
    for name, value in values.items():
        assert_same(engine_memo._kept[name], value, name[:1])
    assert engine_memo._kept_bytes[0] == sum(engine_memo.size_of(v) for v in values.values())
