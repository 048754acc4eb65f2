"""gpt2core's pytest plugin, registered by `pip install "gpt2core[test]"` (the pytest11 entry point `gpt2core`).

In an engine's repository:

    pytest --pyargs gpt2core.conformance --gpt2core-subject=my_engine.adapter:make_subject
    pytest --pyargs gpt2core.conformance --gpt2core-subject-cmd "./gpt2 {model} {references} {dumps}" --gpt2core-map map.json
    pytest --pyargs gpt2core.conformance --gpt2core-dumps DIR --gpt2core-map map.json --gpt2core-references REFS

Each option has an ini key (gpt2core_subject, ...), so a project can name its engine once in pytest.ini.
Markers select levels: parity, property (differential property tests), invariants, slow. A test the subject
cannot run for want of a capability (decode, stages, ...) or of a checkpoint it does not provide is skipped,
with its reason; the last line of the run counts those as "skipped (capability)". A missing reference, model
or dependency fails, never skips.

Fixtures for an engine's own tests: gpt2core_subject, gpt2core_references, gpt2core_model_dir,
gpt2core_compare (see each one's docstring).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

CAPABILITY = "gpt2core capability: "  # how every skip for a missing capability or checkpoint begins
CATEGORY = "skipped (capability)"
MARKERS = {
    "parity": "gpt2core: every checkpoint of the built-in cases against transformers' forward pass",
    "property": "gpt2core: differential property tests on drawn GPT-2s against transformers",
    "invariants": "gpt2core: properties of the engine alone (causality, batch, padding, cache)",
    "slow": "gpt2core: slow tests",
}
OPTIONS = [  # (name, help); each is --gpt2core-<name> and the ini key gpt2core_<name>
    ("subject", "MODULE:FACTORY of a Python engine: factory(model_dir, dtype) returns a subject"),
    ("subject-cmd", "a command that runs a reference set's cases: {model}, {references} and {dumps} are filled in"),
    ("dumps", "a directory of dumps an engine wrote for --gpt2core-references (parity only)"),
    ("map", "the JSON map of the engine's dump files and layouts (with --gpt2core-subject-cmd or --gpt2core-dumps)"),
    ("references", "the reference set --gpt2core-dumps were written for"),
    ("model", "also run the parity tests on this GPT-2 directory, e.g. a trained gpt2 (or set GPT2CORE_MODEL)"),
    ("cache", "where built models and reference sets are kept (default: $GPT2CORE_HOME/conformance)"),
    ("timeout", "seconds one run of --gpt2core-subject-cmd may take (default 600)"),
    ("examples", "hypothesis examples per drawn test (default: the loaded hypothesis profile's max_examples)"),
]


def pytest_addoption(parser):
    group = parser.getgroup("gpt2core", "gpt2core conformance suite (pytest --pyargs gpt2core.conformance)")
    for name, help in OPTIONS:
        default = os.environ.get("GPT2CORE_MODEL") if name == "model" else None
        group.addoption(f"--gpt2core-{name}", default=default, help=help)
        parser.addini(f"gpt2core_{name.replace('-', '_')}", help=help, default="")
    group.addoption("--gpt2core-dtype", action="append", default=None, choices=["float32", "float64"],
                    help="only this dtype (repeatable; default: float32 and float64, or the map's)")  # fmt: skip
    parser.addini("gpt2core_dtype", help="dtypes to test, space-separated", default="")


def pytest_configure(config):
    from .session import ConformanceSession

    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config._gpt2core = ConformanceSession(config)
    config.pluginmanager.register(SkipCounter(), "gpt2core-skip-counter")


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    """A run of the conformance suite (pytest --pyargs gpt2core.conformance) names its engine now: a bad option
    is one usage error (exit status 4), before anything is collected."""
    config = session.config
    if any(str(a).startswith("gpt2core.conformance") or "gpt2core/conformance" in str(a) for a in config.args):
        session_of(config)


def session_of(config):
    from .session import UsageProblem

    state = config._gpt2core
    try:
        state.target  # noqa: B018  (resolved now, so a bad option is one usage error)
    except UsageProblem as e:
        raise pytest.UsageError(f"gpt2core: {e}") from None
    return state


def pytest_generate_tests(metafunc):
    """Parametrize the conformance tests (wherever they are collected from, a star import included):
    gpt2core_parity_point (model, dtype, mode, case, checkpoint), gpt2core_parity_case (model, dtype, case),
    gpt2core_parity_set (model, dtype), gpt2core_drawn_dtype (each dtype the engine runs in)."""
    names = set(metafunc.fixturenames)
    if not names & {"gpt2core_parity_point", "gpt2core_parity_case", "gpt2core_parity_set", "gpt2core_drawn_dtype"}:
        return
    state = session_of(metafunc.config)
    if "gpt2core_drawn_dtype" in names:
        target = state.target
        metafunc.parametrize("gpt2core_drawn_dtype", target.dtypes if target.runs_new_inputs else ["(dumps)"])
        return
    plan = state.parity_plan()
    if "gpt2core_parity_point" in names:  # one test per model, dtype, mode, case and checkpoint
        points = [(m, dt, mode, case, name) for m, dt, cases, names_ in plan for mode in ("chained", "isolated")
                  for case in cases for name in names_]  # fmt: skip
        metafunc.parametrize("gpt2core_parity_point", points, ids=["-".join(p) for p in points])
    elif "gpt2core_parity_case" in names:
        points = [(m, dt, case) for m, dt, cases, _ in plan for case in cases]
        metafunc.parametrize("gpt2core_parity_case", points, ids=["-".join(p) for p in points])
    else:
        sets = [(m, dt) for m, dt, _, _ in plan]
        metafunc.parametrize("gpt2core_parity_set", sets, ids=["-".join(s) for s in sets])


def skip_for(what: str) -> None:
    """Skip the running test because the subject lacks `what` (a capability or a checkpoint)."""
    pytest.skip(CAPABILITY + what)


def pytest_report_teststatus(report, config):
    if capability_reason(report) is not None:
        return CATEGORY, "s", "SKIPPED (capability)"
    return None


def capability_reason(report) -> str | None:
    """What a test skipped for want of a capability lacked, or None."""
    if report.skipped and isinstance(report.longrepr, tuple) and CAPABILITY in str(report.longrepr[2]):
        return str(report.longrepr[2]).split(CAPABILITY, 1)[1]
    return None


class SkipCounter:
    """Counts the skips for a capability (on xdist's controller too) and lists them after the run."""

    def __init__(self):
        self.reasons: Counter = Counter()

    def pytest_runtest_logreport(self, report):
        reason = capability_reason(report)
        if reason is not None:
            self.reasons[reason] += 1

    def pytest_terminal_summary(self, terminalreporter):
        if self.reasons:
            terminalreporter.section(f"gpt2core: {sum(self.reasons.values())} skipped for want of a capability", sep="-")
            for reason, n in self.reasons.most_common():
                terminalreporter.line(f"{n:6d}  {reason}")


# --- fixtures for an engine's own tests ------------------------------------------------------------------


@pytest.fixture(scope="session")
def gpt2core_session(request):
    """The conformance session: the engine under test, the built-in models and their references."""
    return session_of(request.config)


@pytest.fixture(scope="session")
def gpt2core_subject(gpt2core_session):
    """subject(model, dtype): the engine under test on built-in model `model` (tiny, stress, user)."""
    return gpt2core_session.subject


@pytest.fixture(scope="session")
def gpt2core_model_dir(gpt2core_session):
    """model_dir(name) -> Path of built-in model `name` (tiny, stress, user), built once per machine."""
    return gpt2core_session.model_dir


@pytest.fixture(scope="session")
def gpt2core_references(gpt2core_session):
    """references(model, dtype) -> the built-in cases' reference set (gpt2core.verification.reference_set.References):
    .cases, each with .input_ids [B, T], .attention_mask, .position_ids and .array(checkpoint name)."""
    return gpt2core_session.references


@pytest.fixture(scope="session")
def gpt2core_compare():
    """compare(name, got, ref) -> Comparison (.ok, .message()): shape, dtype, then values within gpt2core's
    tolerance for ref's dtype (gpt2core.verification.tolerances.CHECKPOINT_TOL)."""
    from ..verification.compare import compare
    from ..verification.tolerances import CHECKPOINT_TOL

    return lambda name, got, ref: compare(name, got, ref, CHECKPOINT_TOL)
