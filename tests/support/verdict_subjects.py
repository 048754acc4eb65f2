"""Subject factories for the verdict's outputs-agree test (`gpt2core verify --subject support.verdict_subjects:<name>`):
gpt2core's own engine, altered in one way each, so that every verdict and every reason behind one is reached
through the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gpt2core.verification.atomic import atomic_write_text
from support.engine_memo import numpy_subject

SPOILED = "h1.mlp_out"  # the checkpoint a spoiled subject gets wrong, on case SPOILED_CASE
SPOILED_CASE = "hello"
NOT_PROVIDED = "h0.attn_probs"
REFUSED_CASE = "padded_batch"


def verify_with(model_dir, factory: str, *options: str) -> tuple[int, dict]:
    """`gpt2core verify --json` in this process on the model in float64, its subject this module's `factory`:
    (exit status, the JSON report)."""
    from support.inprocess import run_command

    rc, printed = run_command(["verify", "--model", str(model_dir), "--dtype", "float64",
                               "--subject", f"support.verdict_subjects:{factory}", "--json", *options])  # fmt: skip
    return rc, json.loads(printed.splitlines()[-1])


# Under mutmut, a mutant of gpt2core.report cannot change what `verify --json` prints: verification/ and engine/ do not
# import report, and the JSON is json.dumps of verify's own dict. So the report tables' tests read the report that
# mutmut's unmutated runs (its stats run, MUTANT_UNDER_TEST=stats, and its clean run, "") wrote in its working
# directory, instead of running verify again in every mutant's process: about 8 s a report mutant before. Any other
# mutant, and every run outside mutmut (the variable unset), runs verify.
UNMUTATED_REPORTS = Path(".unmutated-verify-reports")


def verify_report(model_dir, factory: str) -> dict:
    """verify_with(model_dir, factory)'s JSON report, read from the unmutated run's copy under a report.py mutant."""
    mutant = os.environ.get("MUTANT_UNDER_TEST")
    copy = UNMUTATED_REPORTS / f"{factory}.json"
    if mutant is not None and mutant.startswith("gpt2core.report.") and copy.is_file():
        return json.loads(copy.read_text())
    report = verify_with(model_dir, factory)[1]
    if mutant in ("stats", ""):
        UNMUTATED_REPORTS.mkdir(exist_ok=True)
        atomic_write_text(copy, json.dumps(report))  # a reader sees the whole report or none
    return report


class Altered:
    """gpt2core's engine (NumpySubject) with some of its answers replaced: every attribute not set here is the engine's."""

    def __init__(self, inner, **changes):
        self.inner = inner
        self.name = f"gpt2core, altered ({', '.join(changes) or 'unchanged'})"
        self.__dict__.update(changes)

    def __getattr__(self, attr):  # only reached for what __init__ did not set
        return getattr(self.inner, attr)


def spoil(array, amount=1e-3):
    return array + amount


def passing(model_dir, dtype):
    return Altered(numpy_subject(model_dir, dtype))


def spoiled(model_dir, dtype):
    """One checkpoint off by 1e-3 on one case (chained mode)."""
    inner = numpy_subject(model_dir, dtype)

    def checkpoints(case):
        out = dict(inner.checkpoints(case))
        if case.name == SPOILED_CASE:
            out[SPOILED] = spoil(out[SPOILED])
        return out

    return Altered(inner, checkpoints=checkpoints)


def waived(model_dir, dtype):
    """The spoiled checkpoint, declared as a known deviation well within its tolerance: WAIVED, never a plain PASS."""
    subject = spoiled(model_dir, dtype)
    subject.deviations = [{"checkpoints": SPOILED, "tolerance": 0.1, "reason": "a test's declared deviation"}]
    return subject


def spoiled_step(model_dir, dtype):
    """The logits of the last decoding step off by 1e-3: only the cached mode can see it."""
    inner = numpy_subject(model_dir, dtype)

    def decode(case, split):
        steps = list(inner.decode(case, split))
        for i, step in enumerate(steps):
            step = dict(step)
            if i == len(steps) - 1 and getattr(case, "name", None) == SPOILED_CASE:
                step["logits"] = spoil(step["logits"])
            yield step

    return Altered(inner, decode=decode)


def short_decode(model_dir, dtype):
    """A cache that yields every decoding step but the last: fewer steps is a failure, not fewer checks."""
    inner = numpy_subject(model_dir, dtype)

    def decode(case, split):
        steps = list(inner.decode(case, split))
        yield from steps[:-1] if len(steps) > 1 else steps

    return Altered(inner, decode=decode)


class AllBut:
    """The checkpoint names a subject provides: all but `left_out`."""

    def __init__(self, left_out):
        self.left_out = left_out

    def __contains__(self, name):
        return name != self.left_out


def not_providing(model_dir, dtype):
    return Altered(numpy_subject(model_dir, dtype), provides=AllBut(NOT_PROVIDED))


def refusing_a_case(model_dir, dtype):
    return Altered(numpy_subject(model_dir, dtype), can_run=lambda case: "the test says so" if case.name == REFUSED_CASE else None)


def refusing_every_case(model_dir, dtype):
    return Altered(numpy_subject(model_dir, dtype), can_run=lambda case: "the test says so")


def chained_only(model_dir, dtype):
    return Altered(numpy_subject(model_dir, dtype), capabilities=frozenset())


def spoiled_in_float32(model_dir, dtype):
    """Spoiled in float32, passing in float64: the verdict over both dtypes is the worst."""
    return spoiled(model_dir, dtype) if str(dtype) == "float32" else passing(model_dir, dtype)
