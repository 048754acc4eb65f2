"""Every fault of the catalogue (gpt2core.verification.faults) is caught, at the checkpoint where it lives.

The parity comparison runs on the stress model (gpt2core.verification.stress: a transformers-built GPT-2 with sharp
attention, random biases and LayerNorm parameters, and outlier channels) against references captured from
transformers in float64 (float32 rounding on attention this sharp is as large as float32's tolerance; float32
appears only in the sensitivity scan). A fault counts only when a comparison fails at the expected checkpoint;
a crash never counts. Faults in one op must also make the property suite fail on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from support.inprocess import run_pytest
from support.models import CACHE
from support.references import reference_set
from threadpoolctl import threadpool_limits

from gpt2core import checkpoint_names
from gpt2core.verification.faults import FAULTS, run_fault, sensitivity
from gpt2core.verification.cases import default_cases
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.sampling import SCORES, compare_sampled
from gpt2core.verification.verify import budgets_of, compare_cached, compare_case
from gpt2core.verification.stress import SHAPE, stress_model_dir

TESTS = Path(__file__).resolve().parents[1]
DTYPES = ("float64", "float32")
_state: dict = {}


@pytest.fixture(scope="module")
def stress(tmp_path_factory):
    """(model dir, {dtype: engine model}, {dtype: references}) for the stress model, built once."""
    if not _state:
        import gpt2core

        model_dir = stress_model_dir(CACHE)
        md = read_model_dir(model_dir)
        cases = default_cases(md.config, md.tokenizer)
        refs, models = {}, {}
        for dtype in DTYPES:
            refs[dtype] = reference_set(model_dir, dtype, tmp_path_factory, cases)
            models[dtype] = gpt2core.load(model_dir, dtype=np.dtype(dtype))
        _state.update(model_dir=model_dir, models=models, refs=refs)
    return _state


def test_the_catalogue_has_at_least_20_distinct_faults():
    assert len(FAULTS) >= 20
    names = checkpoint_names(SHAPE["n_layer"]) + [SCORES]
    for f in FAULTS.values():
        assert f.checkpoint in names, f"{f.name}: {f.checkpoint} is not a checkpoint"
        assert f.scenario in ("forward", "cache", "sampling")
        assert (f.scenario == "sampling") == (f.checkpoint == SCORES), f"{f.name}: sampling faults live at {SCORES}"
    assert sum(f.scenario == "sampling" for f in FAULTS.values()) >= 4
    assert len({f.replacement for f in FAULTS.values()}) == len(FAULTS), "two faults share one replacement"


def test_the_clean_engine_passes_on_the_stress_model(stress):
    model, refs = stress["models"]["float64"], stress["refs"]["float64"]
    subject, names = NumpySubject(model), refs.checkpoint_names
    for case in refs.cases:
        comps = (compare_case(subject, case, "chained", names) + compare_case(subject, case, "isolated", names)
                 + compare_cached(subject, case, names, model.config.vocab_size))  # fmt: skip
        bad = [c.message() for c in comps if not c.ok]
        assert not bad, f"float64 {case.name}: " + "\n".join(bad[:5])
    for dtype in DTYPES:  # sampled generation along transformers' paths, both recorded runs
        sampled = [c for case in stress["refs"][dtype].cases if case.sampling is not None
                   for c in compare_sampled(NumpySubject(stress["models"][dtype]), case, dtype)]  # fmt: skip
        assert len(sampled) == 8 and all(c.ok for c in sampled), [c.message() for c in sampled if not c.ok]
    subject32, refs32 = NumpySubject(stress["models"]["float32"]), stress["refs"]["float32"]
    budgets = budgets_of(subject32, refs32)  # what verify holds a float32 engine to: measured on transformers
    assert budgets.calibrated
    # The sensitivity scan's float32 baseline, with NumPy's BLAS on one thread, as under `pytest -n 2` on 2 cores:
    # summed in that order, the sharpest head's probabilities were 1.1x the fixed float32 tolerance on an AMD EPYC.
    with threadpool_limits(limits=1, user_api="blas"):
        for case in refs32.cases:
            comps = compare_case(subject32, case, "chained", names, budgets.tol, lambda n, c=case.name: budgets.atol(c, n))
            bad = [c.message() for c in comps if not c.ok]
            assert not bad, f"float32 {case.name}: " + "\n".join(bad[:5])


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_is_caught_at_its_checkpoint(stress, name):
    fault = FAULTS[name]
    result = run_fault(fault, {"float64": stress["models"]["float64"]}, {"float64": stress["refs"]["float64"]})
    detail = "\n".join(
        f"  {dtype} {mode}: first diverging {d['checkpoint']} (case {d['case']}); crashes {d['crashes']}; {d['message']}"
        for dtype, by_mode in result["runs"].items() for mode, d in by_mode.items()
    )  # fmt: skip
    assert result["caught"], f"{name} ({fault.description}) not caught at {fault.checkpoint}:\n{detail}"
    for mode, d in result["runs"]["float64"].items():
        assert d["checkpoint"] == fault.checkpoint, f"{name}: {mode} diverged first at {d['checkpoint']}\n{detail}"
        margin_or_problem = d["problem"] if d["margin"] is None else d["margin"] > 1
        assert margin_or_problem, f"{name}: {mode}: caught without a margin or a named problem\n{detail}"


def test_injection_is_undone(stress):
    from gpt2core.verification.faults import inject

    model, refs = stress["models"]["float64"], stress["refs"]["float64"]
    for name in FAULTS:
        with inject(name):
            pass
    subject = NumpySubject(model)
    assert all(c.ok for case in refs.cases for c in compare_case(subject, case, "chained", refs.checkpoint_names))


def test_float64_detects_a_1e_10_relative_weight_perturbation(stress):
    """Sensitivity: the smallest relative perturbation of one weight tensor each comparison detects."""
    found = {dtype: sensitivity(stress["models"][dtype], stress["refs"][dtype]) for dtype in DTYPES}
    assert all(d is not None and d <= 1e-10 for d in found["float64"].values()), found
    assert all(d is not None and d <= 1e-3 for d in found["float32"].values()), found


PROPERTY_CASES = [(name, m) for name, f in FAULTS.items() for m in f.property_modules]
# The test that failed on each fault last time on this machine (one small file per fault and module, so pytest-xdist's
# workers never write the same one): its run puts that test first, and -x stops there. The whole module is still
# collected and run when that test passes, so the order decides the time, never the outcome (an attention fault
# ran test_ops.py's LayerNorm, GELU, softmax and linear tests first: 3.3-5.6 s of the catalogue's 87)
KILLERS = CACHE / "fault-killers"


class KillerFirst:
    """A pytest plugin: the tests of the function `first` ('tests/property/test_ops.py::test_x') run first, the
    others after them in their own order."""

    def __init__(self, first: str | None):
        self.first = first

    def pytest_collection_modifyitems(self, items):
        items.sort(key=lambda item: item.nodeid.split("[")[0] != self.first)


@pytest.mark.parametrize(("name", "module"), PROPERTY_CASES, ids=[f"{n}-{m}" for n, m in PROPERTY_CASES])
def test_property_suite_alone_fails_on_fault(name, module, monkeypatch):
    """The property module, run by itself with the fault injected, fails on an assertion.

    The run is a pytest session inside this process (pytest.main), not a fresh interpreter: torch and
    transformers are imported once, not once per fault (33 fresh processes took 4.8 of CI's 14 minutes).
    The module is imported afresh inside the fault, as in a fresh process: a function it binds at import
    (test_models imports transformer_block) is the faulty one."""
    from hypothesis import settings

    from gpt2core.verification.faults import inject

    # model-level modules write a model per example: 20 of them; no shrinking (tests/conftest.py)
    profile = "faults-ops" if module == "test_ops.py" else "faults"
    previous = settings.get_current_profile_name()
    monkeypatch.delitem(sys.modules, module[:-3], raising=False)
    settings.load_profile(profile)
    record = KILLERS / f"{name}-{module[:-3]}.txt"
    first = record.read_text().strip() if record.is_file() else None
    try:
        with inject(name):
            ret, outcome = run_pytest([str(TESTS / "property" / module), "-x", "-q", "-p", "no:cacheprovider"],
                                      plugins=[KillerFirst(first)])  # fmt: skip
    finally:
        settings.load_profile(previous)
    if len(outcome.failed) == 1:
        KILLERS.mkdir(parents=True, exist_ok=True)
        record.write_text(outcome.failed[0].nodeid.split("[")[0] + "\n")
    reports = "\n".join(r.longreprtext for r in outcome.failed + outcome.errors)
    assert ret == pytest.ExitCode.TESTS_FAILED, f"tests/property/{module} did not fail under {name} (exit {ret}):\n{reports[-3000:]}"
    assert len(outcome.failed) == 1 and not outcome.errors, reports[-3000:]
    assert "AssertionError" in reports or "Falsifying example" in reports, reports[-3000:]
