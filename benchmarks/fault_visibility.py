"""Which faults of the catalogue each precision class can see, and by how much.

Every fault of gpt2core's catalogue (gpt2core.verification.faults, forward-pass faults; the KV-cache and sampling
scenarios need their own modes) is injected into gpt2core's float32 engine, and its chained pass is judged
against the float32 reference set of the catalogue's stress model under each class's measured budgets
(gpt2core.verification.precision.budgets). A fault counts as seen by a class when the first checkpoint over
budget is the one the catalogue names; the margin printed is the largest there (max abs diff / budget).
float32 is also judged at the fixed tolerance it had before measured budgets, so the two columns show what
the budgets gave up.

The engine computes in float32 whatever the class, so an engine of a lower class adds its own rounding (about
1/BUDGET_FACTOR of each budget) on top: a fault whose margin is below ~1.3 in a class is at the edge of what
that class can see.

    python benchmarks/fault_visibility.py [MODEL_DIR] [--classes float32 float16 ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from gpt2core.engine.loading import load
from gpt2core.verification.cases import cases_for
from gpt2core.verification.faults import FAULTS, inject
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.precision.budgets import budgets_for, ensure_budgets
from gpt2core.verification.reference_set import load_references, write_references
from gpt2core.verification.stress import stress_model_dir
from gpt2core.verification.tolerances import CHECKPOINT_TOL
from gpt2core.verification.verify import compare_case

CLASSES = ("float32", "float16", "bfloat16", "int8", "gguf-q8_0")


class Recorded:
    """A subject whose forward pass runs once per case, however many budgets judge it."""

    capabilities = frozenset()

    def __init__(self, subject):
        self.name, self.subject, self.seen = subject.name, subject, {}

    def checkpoints(self, case):
        if case.name not in self.seen:
            self.seen[case.name] = dict(self.subject.checkpoints(case))
        return self.seen[case.name]


def first_over(subject, refs, tol, budget_of) -> tuple[str | None, float]:
    """(the earliest checkpoint over its budget over every case, its largest margin over the cases)."""
    order = {n: i for i, n in enumerate(refs.checkpoint_names)}
    worst: dict[str, float] = {}
    for case in refs.cases:
        for c in compare_case(subject, case, "chained", refs.checkpoint_names, tol, lambda n, cn=case.name: budget_of(cn, n)):
            if not c.ok:
                worst[c.name] = max(worst.get(c.name, 0.0), c.margin)
    if not worst:
        return None, 0.0
    name = min(worst, key=order.__getitem__)
    return name, worst[name]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="model directory (default: the catalogue's stress model)")
    parser.add_argument("--classes", nargs="+", default=list(CLASSES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    md = read_model_dir(args.model or stress_model_dir())
    with tempfile.TemporaryDirectory(prefix="gpt2core-visibility-") as tmp:
        write_references(md, Path(tmp) / "refs", cases_for(md), np.float32, command=" ".join(sys.argv))
        refs = load_references(Path(tmp) / "refs", md)
        judges = {"float32 fixed": (CHECKPOINT_TOL, lambda case, name: 0.0)}
        for cls in args.classes:
            ensure_budgets(refs, md, cls)
            b = budgets_for(refs, cls)
            judges[cls] = (b.tol, b.atol)
        subject = NumpySubject(load(md.path, dtype=np.float32, config=md.config))
        recorded = Recorded(subject)
        clean = {j: first_over(recorded, refs, tol, atol)[0] for j, (tol, atol) in judges.items()}
        if any(clean.values()):
            raise SystemExit(f"the engine without a fault already fails: {clean}")
        rows = []
        for fault in FAULTS.values():
            if fault.scenario != "forward":
                continue
            recorded = Recorded(subject)
            try:
                with inject(fault.name), np.errstate(all="ignore"):
                    seen = {j: first_over(recorded, refs, tol, atol) for j, (tol, atol) in judges.items()}
            except Exception as e:  # noqa: BLE001 - a crash is not a detection
                rows.append({"fault": fault.name, "checkpoint": fault.checkpoint, "crash": f"{type(e).__name__}: {e}"})
                continue
            rows.append({"fault": fault.name, "checkpoint": fault.checkpoint,
                         "classes": {j: {"first": n, "margin": m, "seen": n == fault.checkpoint} for j, (n, m) in seen.items()}})  # fmt: skip
    if args.json:
        print(json.dumps(rows))
        return 0
    names = list(judges)
    print(f"| fault | checkpoint | {' | '.join(names)} |")
    print("|---|---|" + "---|" * len(names))
    for r in rows:
        if "crash" in r:
            print(f"| {r['fault']} | {r['checkpoint']} | the engine crashes on a case: {r['crash']} |")
            continue
        cells = []
        for j in names:
            c = r["classes"][j]
            cells.append(f"{c['margin']:.3g}" if c["seen"] else "not seen" if c["first"] is None else f"at {c['first']} ({c['margin']:.3g})")
        print(f"| {r['fault']} | {r['checkpoint']} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
