"""Reference sets for the test suites: the conformance suite's cache (gpt2core.conformance.builtin), so the
plugin's parity tests and these suites share one set per (model, dtype, cases).

A set lives in <repo>/.cache/test-models/references/<model>-<dtype>-<key>, where the key hashes everything the
files depend on (reference_cache.content_key), so a stale set cannot be found, and every load goes through
`load_references`, which checks the weights' hash and every file's sha256, shape and dtype again.

The cache is what keeps mutmut honest and fast: each mutant runs in a forked pytest session, and a set
kept in a session's temporary directory can be removed by pytest's cleanup of old temporary directories
while later sessions still read it. A process running a mutant (MUTANT_UNDER_TEST names one) never writes
the cache: it builds a private set in its own temporary directory instead.
Comparisons are computed once per (set, mode) and shared by the per-checkpoint tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from support.engine_memo import keep_arrays
from support.models import CACHE

from gpt2core.verification.reference_cache import cached_references, content_key
from gpt2core.verification.cases import default_cases
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.verify import compare_case

_sets: dict = {}
_default_sets: dict = {}
_comparisons: dict = {}


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
    key = (model_dir, np.dtype(dtype).name, content_key(model_dir, dtype, cases))
    if key not in _sets:  # content_key once more inside cached_references: only on the first use of a set
        made = cached_references(CACHE, model_dir, dtype, cases, lambda: tmp_path_factory.mktemp("references"),
                                 command="pytest", capped=False)  # fmt: skip
        _sets[key] = keep_arrays(made)
    return _sets[key]


def comparisons(model, refs, mode: str) -> dict[str, list]:
    """case name -> the case's comparisons in forward-pass order, for `mode` chained or isolated. Kept per process
    and per mutant under test: mutmut forks a mutant's session from the process that ran its stats pass, and a
    mutant's session handed the unmutated run's comparisons would pass every parity test of
    tests/parity/test_checkpoints.py whatever the mutant does (measured on a run of 2026-12-06: 35 mutated functions,
    the engine's forward pass and the verification's masks among them, reached by 4 such tests each)."""
    key = (str(refs.root), mode, os.environ.get("MUTANT_UNDER_TEST"))
    if key not in _comparisons:
        subject = NumpySubject(model)
        _comparisons[key] = {case.name: compare_case(subject, case, mode, refs.checkpoint_names) for case in refs.cases}
    return _comparisons[key]


# The verdict subjects' case names (support.verdict_subjects spoils "hello" and refuses "padded_batch") on prompts of
# 1 to 6 tokens: 20 positions, where the default cases have 211 (128 of them random tokens, 60 a padded batch). A run
# of gpt2core's engine over every mode on the tiny model takes about 0.1 s on them, 0.5 s on the default set, so the
# tests of what verify makes of a run's comparisons (tests/engine/test_verify_summary.py) and of how a dump is read
# (test_dump_read.py) cost a mutmut mutant a fraction as much. "sentence" leaves 3 positions to decode one at a time,
# so a cache that skips a step is seen; "hello" is one row of more than one token.
SHORT_PROMPTS = {
    "one_token": ["Hello"],
    "hello": ["Hello."],
    "sentence": ["The quick brown fox jumps"],
    "padded_batch": ["Hello.", "Attention is all you need"],
}


def short_reference_set(model_dir: Path, dtype, tmp_path_factory):
    """The reference set of the short cases (SHORT_PROMPTS) for (model_dir, dtype), loaded with checks."""
    from gpt2core.verification.cases import text_case

    tokenizer = read_model_dir(Path(model_dir)).tokenizer
    cases = [text_case(name, tokenizer, prompts) for name, prompts in SHORT_PROMPTS.items()]
    return reference_set(model_dir, dtype, tmp_path_factory, cases)
