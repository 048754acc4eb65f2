"""How far correct engines sit from their precision class's honest error: the ratio BUDGET_FACTOR is chosen from.

For each engine, per checkpoint kind, the worst ratio |engine - reference| / |honest - float64 transformers|
over every checkpoint and case of the built-in cases (gpt2core.verification.precision.budgets).

    python benchmarks/budget_ratios.py MODEL_DIR numpy ct2 ct2int8
"""
import sys, os, tempfile, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "ctranslate2"))
from pathlib import Path
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.cases import cases_for
from gpt2core.verification.reference_set import write_references, load_references
from gpt2core.verification.precision import budgets
from gpt2core.verification.verify import compare_defined
from gpt2core.verification.batch_layout import token_mask
from gpt2core.verification.numpy_subject import numpy_subject
md = read_model_dir(sys.argv[1]); cases = cases_for(md)
tmp = tempfile.mkdtemp()
write_references(md, Path(tmp)/"f32", cases, np.float32); refs = load_references(Path(tmp)/"f32", md)
def ratios(subject, precision):
    doc = budgets.ensure_budgets(refs, md, precision)
    worst = {}
    for case in refs.cases:
        got = subject.checkpoints(case); tokens = token_mask(case)
        for n in getattr(subject, "provides", refs.checkpoint_names):
            ref = case.array(n)
            c = compare_defined(subject, n, got[n], ref, tokens, {np.dtype(np.float32): 1.0})
            h = doc["cases"][case.name]["checkpoints"][n][0]
            k = n.split(".")[-1]
            r = c.max_abs / h if h else float("inf")
            if r > worst.get(k, (0,))[0]: worst[k] = (r, n, case.name, c.max_abs, h)
    print(subject.name, precision)
    for k, v in worst.items(): print(f"   {k:12s} ratio {v[0]:.2f} at {v[1]} {v[2]} engine {v[3]:.2e} honest {v[4]:.2e}")
for p in sys.argv[2:]:
    if p == "numpy": ratios(numpy_subject(md, np.float32), "float32")
    elif p.startswith("ct2"):
        import ct2_subject
        ct = "int8_float32" if p == "ct2int8" else "float32"
        s = ct2_subject.CTranslate2Subject(md, ct); ratios(s, s.precision)
