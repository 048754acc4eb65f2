"""Reference sets for the test suites, written by gpt2core.verification.reference_set and cached under a content key.

A set lives in <repo>/.cache/test-references/<model>-<dtype>-<key>, where the key hashes everything the
files depend on: the weights' sha256, the dtype, the cases' token ids and masks, the torch, transformers
and numpy versions, torch's thread count, the CPU, and the source of gpt2core/verification/capture.py and
reference_set.py (the capture code and the file format). A stale set therefore cannot be found, and every load goes through `load_references`, which checks
the weights' hash and every file's sha256, shape and dtype again.

The cache is what keeps mutmut honest and fast: each mutant runs in a forked pytest session, and a set
kept in a session's temporary directory can be removed by pytest's cleanup of old temporary directories
while later sessions still read it. A process running a mutant (MUTANT_UNDER_TEST names one) never writes
the cache: it builds a private set in its own temporary directory instead.
Comparisons are computed once per (set, mode) and shared by the per-checkpoint tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from support.models import REPO

import gpt2core.verification.capture as capture_module
import gpt2core.verification.reference_set as reference_set_module
from gpt2core.bench import cpu_name
from gpt2core.errors import ReferencesError
from gpt2core.verification.atomic import build_once
from gpt2core.verification.cases import default_cases
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.reference_set import MANIFEST, load_references, versions, write_references
from gpt2core.verification.verify import compare_case

CACHE = Path(os.environ.get("GPT2CORE_TEST_REFERENCES", REPO / ".cache" / "test-references"))
_sets: dict = {}
_default_sets: dict = {}
_comparisons: dict = {}


def running_a_mutant() -> bool:
    """True inside mutmut's run of one mutant (or its forced-failure check): such a process writes no cache."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return "__mutmut_" in name or name == "fail"


def content_key(model_dir: Path, dtype, cases) -> str:
    """sha256 of everything a reference set's files depend on."""
    parts = {
        "weights": read_model_dir(model_dir).weights_sha256,
        "dtype": np.dtype(dtype).name,
        "cases": [[c.name, c.input_ids.tolist(), None if c.attention_mask is None else c.attention_mask.tolist()] for c in cases],
        "versions": {k: v for k, v in versions().items() if k in ("torch", "transformers", "numpy")},
        "capture_code": [hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for m in (capture_module, reference_set_module)],
        "torch_threads": torch.get_num_threads(),  # float32 bits depend on the reduction order, so on threads
        # and on the CPU's kernels: a set cached by an earlier session (its host not recorded) differed from
        # transformers' output here by up to 4e-6 while every other part of the key matched; rebuilt, it agreed
        "cpu": [cpu_name(), torch.backends.cpu.get_cpu_capability()],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def reference_set(model_dir: Path, dtype, tmp_path_factory, cases=None):
    """The reference set of `cases` (default: the built-in cases) for (model_dir, dtype), loaded with checks."""
    model_dir = Path(model_dir)
    if cases is None:  # the default cases need the tokenizer (0.04 s to build): once per process
        key = (model_dir, np.dtype(dtype).name)
        if key not in _default_sets:
            md = read_model_dir(model_dir)
            cases = default_cases(md.config, md.tokenizer)
            _default_sets[key] = reference_set(model_dir, dtype, tmp_path_factory, cases)
        return _default_sets[key]
    name = f"{model_dir.name}-{np.dtype(dtype).name}-{content_key(model_dir, dtype, cases)}"
    if name not in _sets:
        _sets[name] = _cached(name, model_dir, dtype, cases, tmp_path_factory)
    return _sets[name]


def _cached(name: str, model_dir: Path, dtype, cases, tmp_path_factory):
    final = CACHE / name
    if running_a_mutant():
        if (final / MANIFEST).is_file():
            return load_references(final, model_dir)
        out = tmp_path_factory.mktemp(f"references-{name}")
        write_references(model_dir, out, cases, dtype, command="pytest (private to a mutmut mutant)")
        return load_references(out, model_dir)
    if (final / MANIFEST).is_file():
        try:
            return load_references(final, model_dir)
        except ReferencesError:  # damaged on disk: rebuilt below, never used as is
            shutil.rmtree(final)
    # written whole or not at all (write_references), once under a file lock (pytest -n workers share the cache)
    build_once(final, lambda p: (p / MANIFEST).is_file(), lambda p: write_references(model_dir, p, cases, dtype, command="pytest"))
    return load_references(final, model_dir)


def comparisons(model, refs, mode: str) -> dict[str, list]:
    """case name -> the case's comparisons in forward-pass order, for `mode` chained or isolated."""
    key = (str(refs.root), mode)
    if key not in _comparisons:
        subject = NumpySubject(model)
        _comparisons[key] = {case.name: compare_case(subject, case, mode, refs.checkpoint_names) for case in refs.cases}
    return _comparisons[key]
