"""mutmut's results written by hand: what `gpt2core mutation-score` and `gpt2core audit` read."""

from __future__ import annotations

import json


def write_run(root, codes: dict, module="src/gpt2core/ops.py", code: dict | None = None):
    """mutmut's results for `codes` (name -> exit code) and its mutated source: `code` gives a mutant's
    function body (name -> return expression; default: return its own number)."""
    meta = root / "mutants" / (module + ".meta")
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {}}))
    functions = [name.rpartition(".")[2] for name in codes if "__mutmut_" in name]
    body = {name.rpartition(".")[2]: expression for name, expression in (code or {}).items()}
    source = "".join(f"def {f}(x):\n    return {body.get(f, f.rpartition('_')[2])}\n\n" for f in functions)
    (root / "mutants" / module).write_text(source)
    return root
