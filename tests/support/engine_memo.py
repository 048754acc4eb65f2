"""What mutmut's unmutated runs computed and read, kept for its mutants' sessions where no mutant can change it.

Under mutmut a mutant of the verification (verify.py, compare.py, report.py, ...) is tested by running a whole verify
on the tiny model, and most of such a session went to work that no such mutant changes, done again in every
mutant's session: the engine answering the same cases with the same weights (its forward pass, its 50,257-wide head,
the decoding steps, generation) and the reference set's arrays read and hashed again (~400 reads a verify).

By MUTANT_UNDER_TEST:
- outside mutmut, in its forced-fail run, or with a fault injected (GPT2CORE_FAULT): nothing is kept or handed out;
- in mutmut's unmutated runs ("stats", its stats pass; "", its clean run): everything is computed and read as before
  (mutmut records which mutated functions each test reaches while it runs), and a copy of each answer and array is
  kept in the process; mutmut's main process forks every mutant's session after those runs, and the stats pass's
  second process sends back what it kept (support/stats_on_two_cores.py: `export`, `absorb`);
- under a mutant: a kept answer or array is handed out (a copy each time, so a mutant that writes into one changes
  nothing for the next caller), unless the mutant is in code that computes it (ENGINE_CODE for the engine's answers;
  a reference file is read by code mutmut does not mutate); whatever is not kept is computed and read.

Kept: gpt2core's engine as a subject (`numpy_subject`, in place of gpt2core's factory of the same name): the loaded
model, and the answers of `checkpoints`, `decode`, `generate` and `sample_scores`, each a function of the model, the
dtype and its arguments only (the case's ids and mask; the split; the token count; the sampling settings and path).
`stage` (isolated mode) takes a callback into the verification and is always computed. And a reference set's arrays
(`keep_arrays`), keyed by each file's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from gpt2core.verification.numpy_subject import numpy_subject as engine_subject
from gpt2core.verification.reference_set import ReferenceCase

# The mutated code NumpySubject's answers run (tests/engine/test_engine_memo.py traces every function they call and
# holds this list to it): a mutant there is tested on answers computed afresh.
ENGINE_CODE = ("gpt2core.engine.", "gpt2core.verification.sampling.x_step_name__mutmut_")
KEPT_BYTES = 3 << 29  # at most 1.5 GiB kept by a process (mutmut's main process: 1 GiB before; the machine has 24)

_subjects: dict[tuple, object] = {}  # model_key -> the NumpySubject first loaded for it
_kept: dict[str, object] = {}  # digest of a key -> an answer or an array
_kept_bytes = [0]


def storing() -> bool:
    """In one of mutmut's unmutated runs (its stats pass or clean run), with no fault injected."""
    return os.environ.get("MUTANT_UNDER_TEST") in ("stats", "") and not os.environ.get("GPT2CORE_FAULT")


def mutant() -> str | None:
    """The mutant under test, if a mutant (not a run of mutmut's own) is, with no fault injected."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return name if "__mutmut_" in name and not os.environ.get("GPT2CORE_FAULT") else None


def engine_serving() -> bool:
    """Under a mutant none of whose code the engine's answers run."""
    name = mutant()
    return name is not None and not name.startswith(ENGINE_CODE)


def digest(key: tuple) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()


def copied(value):
    """A copy of an answer: an array, a dict of arrays, or a list of dicts of arrays."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {name: copied(item) for name, item in value.items()}
    if isinstance(value, list):
        return [copied(item) for item in value]
    raise TypeError(f"a kept value of type {type(value).__name__}")


def size_of(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    items = value.values() if isinstance(value, dict) else value
    return sum(size_of(item) for item in items)


def kept(key: tuple, compute, serving: bool):
    """The kept value for `key` (a copy) when `serving`, else `compute()`'s, kept when storing or serving (a later
    test of the same session may use it) and within KEPT_BYTES."""
    name = digest(key)
    if serving and name in _kept:
        return copied(_kept[name])
    fresh = compute()
    if (storing() or serving) and name not in _kept:
        size = size_of(fresh)
        if _kept_bytes[0] + size <= KEPT_BYTES:
            _kept[name] = copied(fresh)
            _kept_bytes[0] += size
    return fresh


# --- gpt2core's engine as a subject ---------------------------------------------------------------------------------


def numpy_subject(model_dir, dtype):
    """gpt2core's numpy_subject(model_dir, dtype), its answers kept and handed out as the module docstring says; under
    a mutant the loaded model too (loading the tiny model's weights is a tenth of a verify on the short cases)."""
    if not (storing() or mutant()):
        return engine_subject(model_dir, dtype)
    key = model_key(model_dir, dtype)
    subject = _subjects.get(key) if engine_serving() else None
    if subject is None:
        subject = engine_subject(model_dir, dtype)
        _subjects.setdefault(key, subject)
    return KeptAnswers(subject, key)


def model_key(model_dir, dtype) -> tuple:
    """The model directory (resolved; a path or a read ModelDir, as a factory is given), each file's name, size and
    modification time, and the dtype."""
    root = Path(getattr(model_dir, "path", model_dir)).resolve()
    files = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in root.iterdir() if p.is_file()))
    return (str(root), files, np.dtype(dtype).str)


def array_key(array) -> tuple | None:
    if array is None:
        return None
    array = np.asarray(array)
    return (array.shape, array.dtype.str, array.tobytes())


def case_key(case) -> tuple:
    """What the engine's answers read of a case: its ids and its mask."""
    return (array_key(case.input_ids), array_key(case.attention_mask))


class KeptAnswers:
    """A NumpySubject whose answers go through `kept`; every other attribute is the subject's own."""

    def __init__(self, subject, key: tuple):
        self.subject, self.key = subject, key

    def __getattr__(self, attr):  # only reached for what __init__ and the class do not define
        return getattr(self.subject, attr)

    def checkpoints(self, case):
        return kept(("checkpoints", self.key, case_key(case)), lambda: self.subject.checkpoints(case), engine_serving())

    def decode(self, case, split: int):
        yield from kept(("decode", self.key, case_key(case), int(split)),
                        lambda: list(self.subject.decode(case, split)), engine_serving())  # fmt: skip

    def generate(self, case, max_new_tokens: int):
        return kept(("generate", self.key, case_key(case), int(max_new_tokens)),
                    lambda: self.subject.generate(case, max_new_tokens), engine_serving())  # fmt: skip

    def sample_scores(self, case, settings, path_ids):
        sampling = json.dumps([settings.temperature, settings.top_k, settings.top_p])
        return kept(("sample_scores", self.key, case_key(case), sampling, array_key(path_ids)),
                    lambda: self.subject.sample_scores(case, settings, path_ids), engine_serving())  # fmt: skip


# --- a reference set's arrays ---------------------------------------------------------------------------------------


def keep_arrays(references):
    """`references` (a loaded set) with each case's `array(name)` kept, keyed by the file's path, size and modification
    time; outside mutmut's runs and mutants the set as it is. ReferenceCase.array (reference_set.py, which mutmut does
    not mutate) checks the file's sha256, shape and dtype before it gives an array, so only checked arrays are kept."""
    if storing() or mutant():
        for case in references.cases:
            if isinstance(case, ReferenceCase) and "array" not in vars(case):
                case.array = KeptArray(case)
    return references


class KeptArray:
    """A case's `array(name)` through `kept`."""

    def __init__(self, case):
        self.read = ReferenceCase.array.__get__(case)
        self.case = case

    def __call__(self, name: str):
        info = self.case.files.get(name) or self.case.sampling_files.get(name)
        if info is None:
            return self.read(name)  # the case's own error
        path = Path(self.case.root) / info["file"]
        try:
            stat = path.stat()
        except OSError:
            return self.read(name)
        key = ("array", str(path), stat.st_size, stat.st_mtime_ns, info["sha256"])
        return kept(key, lambda: self.read(name), mutant() is not None)


# --- the stats pass's second process --------------------------------------------------------------------------------


def flattened(value, prefix: str) -> dict[str, np.ndarray]:
    """An answer as named arrays: `prefix` then `/d:<name>` for a dict's item, `/l:<i>` for a list's."""
    if isinstance(value, np.ndarray):
        return {prefix: value}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    tag = "d" if isinstance(value, dict) else "l"
    out: dict[str, np.ndarray] = {}
    for name, item in items:
        if "/" in str(name):
            raise ValueError(f"a kept value's name has a slash: {name!r}")
        out.update(flattened(item, f"{prefix}/{tag}:{name}"))
    return out


def rebuilt(parts: list[tuple[list[str], np.ndarray]]):
    """flattened's inverse for one value: its arrays' paths (after the digest) and the arrays."""
    if len(parts) == 1 and not parts[0][0]:
        return parts[0][1]
    tag = parts[0][0][0].split(":", 1)[0]
    groups: dict[str, list] = {}
    for path, array in parts:
        groups.setdefault(path[0].split(":", 1)[1], []).append((path[1:], array))
    if tag == "d":
        return {name: rebuilt(group) for name, group in groups.items()}
    return [rebuilt(groups[str(i)]) for i in range(len(groups))]


def export(path: Path) -> None:
    """What this process kept, to `path` (.npz; no pickles). An empty dict or list holds no array and is not sent: the
    process that absorbs it computes that answer again when asked."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in _kept.items():
        arrays.update(flattened(value, name))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def absorb(path: Path) -> None:
    """What another process exported to `path`, added to what this one keeps."""
    with np.load(path, allow_pickle=False) as npz:
        values: dict[str, list] = {}
        for key in npz.files:
            name, *rest = key.split("/")
            values.setdefault(name, []).append((rest, npz[key]))
    for name, parts in values.items():
        value = rebuilt(parts)
        size = size_of(value)
        if name not in _kept and _kept_bytes[0] + size <= KEPT_BYTES:
            _kept[name] = value
            _kept_bytes[0] += size
