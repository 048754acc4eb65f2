"""Reference sets for the parity suite, written by gpt2core.references and kept per process.

Each set is written into a fresh temporary directory (never a stale cache) and read back with
`load_references`, so the weight hash, file hashes, shapes and dtypes are checked on every run.
Comparisons are computed once per (model, dtype, case, mode) and shared by the per-checkpoint tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gpt2core.config import GPT2Config
from gpt2core.references import default_cases, load_references, tokenizer_for, write_references
from gpt2core.verify import compare_case

_sets: dict = {}
_comparisons: dict = {}


def reference_set(model_dir: Path, dtype, tmp_path_factory):
    key = (str(model_dir), np.dtype(dtype).name)
    if key not in _sets:
        config = GPT2Config.from_json_file(model_dir / "config.json")
        out = tmp_path_factory.mktemp(f"references-{model_dir.name}-{np.dtype(dtype).name}")
        write_references(model_dir, out, default_cases(config, tokenizer_for(model_dir)), dtype, command="pytest")
        _sets[key] = load_references(out, model_dir)
    return _sets[key]


def comparisons(model, refs, mode: str) -> dict[str, list]:
    """case name -> the case's comparisons in forward-pass order, for `mode` chained or isolated."""
    key = (str(refs.root), mode)
    if key not in _comparisons:
        _comparisons[key] = {case.name: compare_case(model, case, mode) for case in refs.cases}
    return _comparisons[key]
