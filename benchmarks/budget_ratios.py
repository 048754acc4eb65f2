"""How far correct engines sit from their precision class's honest error: the ratio BUDGET_FACTOR is chosen from.

For each engine, per checkpoint kind, the worst ratio |engine - reference| / |honest - float64 transformers|
over every checkpoint and case of the built-in cases (gpt2core.verification.precision.budgets), with where it
was reached. An engine whose error at a checkpoint is 0 (exact) is left out of that checkpoint's ratio.

    python benchmarks/budget_ratios.py MODEL_DIR numpy ct2 ct2int8
      numpy    gpt2core's NumPy engine in float32 (class float32)
      ct2      CTranslate2 float32 (examples/ctranslate2; logits only)
      ct2int8  CTranslate2 int8_float32 (class int8; logits only)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from gpt2core.verification.batch_layout import token_mask
from gpt2core.verification.cases import cases_for
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.numpy_subject import numpy_subject
from gpt2core.verification.precision.budgets import ensure_budgets
from gpt2core.verification.reference_set import load_references, write_references
from gpt2core.verification.subject import kind_of
from gpt2core.verification.verify import compare_defined

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def ratios(subject, precision: str, refs, model_dir) -> dict:
    """checkpoint kind -> (worst ratio, checkpoint, case, engine error, honest error)."""
    doc = ensure_budgets(refs, model_dir, precision)
    worst: dict[str, tuple] = {}
    for case in refs.cases:
        got, tokens = subject.checkpoints(case), token_mask(case)
        for name in getattr(subject, "provides", refs.checkpoint_names):
            c = compare_defined(subject, name, got[name], case.array(name), tokens, {np.dtype(np.float32): 1.0})
            honest = doc["cases"][case.name]["checkpoints"][name][0]
            if c.max_abs == 0 or honest == 0:
                continue
            ratio = c.max_abs / honest
            if ratio > worst.get(kind_of(name), (0.0,))[0]:
                worst[kind_of(name)] = (ratio, name, case.name, c.max_abs, honest)
    return worst


def subject_for(engine: str, model_dir):
    if engine == "numpy":
        return numpy_subject(model_dir, np.float32), "float32"
    sys.path.insert(0, str(EXAMPLES / "ctranslate2"))
    import ct2_subject

    subject = ct2_subject.CTranslate2Subject(model_dir, "int8_float32" if engine == "ct2int8" else "float32")
    return subject, subject.precision


def main() -> int:
    model_dir = read_model_dir(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="gpt2core-ratios-") as tmp:
        write_references(model_dir, Path(tmp) / "refs", cases_for(model_dir), np.float32, command=" ".join(sys.argv))
        refs = load_references(Path(tmp) / "refs", model_dir)
        for engine in sys.argv[2:]:
            subject, precision = subject_for(engine, model_dir)
            print(f"{subject.name}, class {precision}: worst |engine error| / |honest error| per checkpoint kind")
            for kind, (ratio, name, case, err, honest) in ratios(subject, precision, refs, model_dir).items():
                print(f"  {kind:12s} {ratio:6.2f}  at {name}, case {case}: engine {err:.2e}, honest {honest:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
