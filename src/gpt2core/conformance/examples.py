"""One drawn example, run on the engine under test: its directory, its subject, and on failure the
directory kept with a command that reproduces the comparison outside pytest."""

from __future__ import annotations

import shutil
from collections import Counter
from contextlib import contextmanager

import numpy as np

from ..verification.model_dir import read_model_dir
from ..verification.precision.classes import precision_class
from ..verification.tolerances import DRAWN_CLASS_TOL, DRAWN_TOL, FlooredTolerance
from ..verification.verify import compare_cached, compare_case, default_split, first_divergence
from .drawn import cases_of, keep, write_example


class NotRunnable(Exception):
    """A drawn example the subject could not run (its `can_run` refused every input): counted, never a pass."""


class Coverage:
    """How many of a drawn test's examples the subject ran, and why the others did not. A drawn test never ends
    on the first input its subject cannot run (pytest.skip inside hypothesis would skip the whole test, whatever
    the other examples show): each such example is counted, and `check` fails the test if any was not run."""

    def __init__(self):
        self.ran, self.not_run = 0, Counter()

    @contextmanager
    def example(self):
        try:
            yield
        except NotRunnable as e:
            self.not_run[str(e)] += 1
            return
        self.ran += 1

    def check(self, what: str) -> None:
        if self.not_run:
            reasons = "; ".join(f"{n} x {why}" for why, n in self.not_run.most_common())
            raise AssertionError(f"{what}: the subject ran {self.ran} of {self.ran + sum(self.not_run.values())} drawn "
                                 f"examples; it could not run the others ({reasons})")  # fmt: skip


@contextmanager
def example_dir(session):
    """A fresh directory for one example; removed when the example passes, kept (and named) when it fails."""
    work = session.workdir("example")
    yield work  # an exception leaves it in place
    shutil.rmtree(work, ignore_errors=True)


def drawn_tolerance(subject, dtype) -> dict:
    """DRAWN_TOL, or for an engine of a lower precision class DRAWN_CLASS_TOL (drawn models carry no measured
    budgets: the class's worst honest error on the built-in model, times BUDGET_FACTOR)."""
    precision = getattr(subject, "precision", np.dtype(dtype).name)
    if precision in ("float32", "float64"):
        return DRAWN_TOL
    return FlooredTolerance({np.dtype(np.float32): DRAWN_CLASS_TOL[precision_class(precision).name]})


def decodable(case) -> bool:
    """Whether cached decoding can be compared on the case: a prefill in which every row has a token, and at
    least one position after it (compare_cached's default split)."""
    split, T = default_split(case), case.input_ids.shape[1]
    mask = case.attention_mask
    return split < T and (mask is None or bool(mask[:, :split].any(axis=1).all()))


def differential(session, cfg, weights, inputs, dtype) -> None:
    """Every checkpoint the subject provides, on every drawn input, against transformers; in the isolated
    and cached modes too where the subject offers them. An AssertionError names the first divergence and
    the command that reproduces it."""
    target = session.target
    with example_dir(session) as work:
        refs = write_example(work, cfg, weights, cases_of(inputs), dtype)
        subject = target.make(read_model_dir(work / "model"), dtype, work)
        provided = [n for n in refs.checkpoint_names if n in getattr(subject, "provides", refs.checkpoint_names)]
        tol = drawn_tolerance(subject, refs.dtype)
        ran, failures = 0, []
        for case in refs.cases:
            why = subject.can_run(case) if hasattr(subject, "can_run") else None
            if why:
                continue
            ran += 1
            comps = compare_case(subject, case, "chained", provided, tol)
            if "stages" in subject.capabilities:
                comps += compare_case(subject, case, "isolated", provided, tol)
            if "decode" in subject.capabilities and decodable(case):
                comps += compare_cached(subject, case, provided, cfg["vocab_size"], tol=tol)
            bad = first_divergence(comps)
            if bad is not None:
                failures.append(f"case {case.name} {list(case.input_ids.shape)}: {bad.message()}")
        if not ran:
            raise NotRunnable(why)
        if failures:
            kept = keep(work)
            raise AssertionError("\n".join(failures) + "\nreproduce outside pytest:\n  "
                                 + target.reproduce(kept / "model", kept / "references"))  # fmt: skip
