"""Invariants: the engine compared with itself, no reference needed. Each drawn example writes a model and
its cases' inputs (gpt2core.conformance.drawn), runs the subject once on all of them, and compares parts of
its checkpoints that must agree, within DRAWN_TOL (gpt2core.verification.tolerances)."""

from __future__ import annotations

import numpy as np

from ..verification.batch_layout import to_left_padded, token_mask
from ..verification.compare import compare
from ..verification.model_dir import read_model_dir
from ..verification.subject import kind_of
from ..verification.tolerances import DRAWN_TOL
from .drawn import keep, write_example
from .examples import NotRunnable


class Run:
    """The subject's checkpoints on a drawn model's cases (one engine process for a command subject)."""

    def __init__(self, session, cfg, weights, cases, dtype, work):
        self.session, self.work = session, work
        self.refs = write_example(work, cfg, weights, cases, dtype, references=False)
        self.subject = session.target.make(read_model_dir(work / "model"), dtype, work)
        self.names = [n for n in self.refs.checkpoint_names if n in getattr(self.subject, "provides", self.refs.checkpoint_names)]
        self._out: dict = {}

    def case(self, name):
        return self.refs.case(name)

    def require_runs(self, *names) -> None:
        """NotRunnable (counted by the test's Coverage) unless the subject runs each named case."""
        for name in names:
            why = self.subject.can_run(self.case(name)) if hasattr(self.subject, "can_run") else None
            if why:
                raise NotRunnable(f"the invariant's inputs: {why}")

    def checkpoint(self, case_name: str, name: str) -> np.ndarray:
        """The subject's checkpoint in the case's layout (left-padded; NaN at padding for a subject that lays
        its batch out otherwise), masked scores as the dtype's minimum."""
        if case_name not in self._out:
            self._out[case_name] = self.subject.checkpoints(self.case(case_name))
        array, case = np.asarray(self._out[case_name][name]), self.case(case_name)
        layout = getattr(self.subject, "batch_layout", "left-padded")
        if layout != "left-padded":
            array = to_left_padded(array, name, token_mask(case), layout, f"{name} ({layout})")
        return masked_as_min(name, array, case)


def masked_as_min(name: str, scores: np.ndarray, case) -> np.ndarray:
    """Attention scores with every masked entry (a future key, a padding key) set to the dtype's minimum,
    whatever the subject's convention for them (-inf, the minimum, not computed)."""
    if kind_of(name) != "attn_scores" or scores.ndim != 4 or not np.issubdtype(scores.dtype, np.floating):
        return scores
    B, T = case.input_ids.shape
    allowed = np.tril(np.ones((T, T), bool))[None, None]
    if case.attention_mask is not None:
        allowed = allowed & case.attention_mask.astype(bool)[:, None, None, :]
    if scores.shape[2:] != (T, T):
        return scores
    return np.where(allowed, scores, np.finfo(scores.dtype).min).astype(scores.dtype)


def assert_agree(pairs, what: str, run: Run) -> None:
    """pairs: (label, got, expected); every one within DRAWN_TOL, else one message with all that fail."""
    bad = []
    for label, got, expected in pairs:
        c = compare(label, got, expected, DRAWN_TOL)
        if not c.ok:
            bad.append(c.message())
    if bad:
        fail(run, f"{what}: {len(bad)} of {len(pairs)} checkpoints differ:\n" + "\n".join(bad[:8]))


def fail(run: Run, message: str):
    """Keep the example's model and inputs and raise an AssertionError naming where they are."""
    run.work = kept = keep(run.work)
    raise AssertionError(f"{message}\nthe model and its inputs are kept in {kept}")
