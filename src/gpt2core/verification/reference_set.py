"""Reference sets: transformers' checkpoints written as .npy files any language can read, and read back with checks.

`write_references` stores one directory per set:
  manifest.json                   format, dtype, model (path, config, sha256 of the weight files), versions,
                                  the command, and per case its input ids, attention mask, position ids,
                                  transformers' greedy continuation, and every checkpoint's file, shape,
                                  dtype and sha256
  <case>/<checkpoint>.npy         e.g. sentence/h3.attn_scores.npy
  cases.txt                       the case names, one per line
  <case>/input_ids.npy, attention_mask.npy, position_ids.npy
                                  the case's inputs as little-endian int64 [B, T] (the mask all ones when
                                  the case has no padding; padding on the left), so an engine in any
                                  language runs the cases without a JSON parser
  <case>/lengths.npy              int64 [B]: each row's tokens (the last `length` of its T positions), for
                                  an engine that lays its batch out right-padded or packed
  budgets/float32.json            (float32 sets) what float32 arithmetic earns per checkpoint and case:
                                  transformers' float32 pass against its float64 one (gpt2core.verification.
                                  precision.budgets); other classes' budgets are added by `gpt2core budgets`
  <case>/decode_split.npy, unrelated_ids.npy, generate_tokens.npy, sample_ids.npy, sample_settings.npy
                                  what an engine runs in the cached, generate and sampled modes, for engines
                                  verified through files (gpt2core.verification.mode_inputs)
  <case>/sample.scores@step=N.npy, sample.logits@step=N.npy
                                  on two cases (batches first), transformers' sampled generation: the
                                  processed scores and raw logits [B, V] float32 of each step; the manifest's
                                  "sampling" holds the settings and the sampled ids (see .sampling)
The checkpoints come from transformers' own forward pass (gpt2core.verification.capture).
`load_references` refuses a set made for other weights, a missing or altered file, a wrong shape or dtype.

Writing needs torch and transformers (`pip install "gpt2core[test]"`); reading does not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .atomic import atomic_directory, check_new_or_empty_dir
from .cases import Case
from .errors import ReferencesError
from .mode_inputs import write_mode_inputs
from .model_dir import ModelDir, file_sha256, read_model_dir
from .sampling import SAMPLING_RUNS, LOGITS, SCORES, SamplingSettings, step_name
from .subject import checkpoint_names
from .versions import versions

FORMAT = "gpt2core-references/4"  # /4: every case's mode inputs (gpt2core.verification.mode_inputs)
MANIFEST = "manifest.json"
CASES_FILE = "cases.txt"
GREEDY_TOKENS = 8  # transformers' greedy continuation recorded per case, for the "generate" mode


def write_references(model_dir: ModelDir | Path, out_dir, cases: list[Case], dtype=np.float32, command: str | None = None,
                     checkpoints: bool = True, generation: bool = True) -> Path:  # fmt: skip
    """Capture `cases` from transformers on model_dir and write them (and manifest.json) to out_dir, a new or
    empty directory; the set appears there whole when it is complete, never in part.

    generation=False records no greedy continuation and no sampled path (the conformance suite's drawn
    models); checkpoints=False writes the cases' inputs alone, for tests that compare an engine with itself
    (gpt2core.conformance's invariants), and needs no transformers."""
    from .hf import require_transformers

    if checkpoints:
        require_transformers()
    model_dir = read_model_dir(model_dir)
    out_dir, dtype, config = Path(out_dir), np.dtype(dtype), model_dir.config
    check_new_or_empty_dir(out_dir)  # before any capture: an existing set (or anything else) is never overwritten
    manifest = {
        "format": FORMAT,
        "dtype": dtype.name,
        "model": {"path": str(model_dir.path.resolve()), "weights_sha256": model_dir.weights_sha256, "config": config.to_dict()},
        "versions": versions(),
        "command": command if command is not None else " ".join(sys.argv),
        "checkpoint_order": checkpoint_names(config.n_layer),
        "cases": [],
    }  # fmt: skip
    sampled = sampling_cases(cases, config.n_positions) if checkpoints and generation else {}
    with atomic_directory(out_dir) as tmp:  # an interrupted write leaves no set behind (see .atomic)
        for case in cases:
            entry = write_case(model_dir, tmp, case, dtype, checkpoints, generation)
            if case.name in sampled:
                entry["sampling"] = write_sampling(model_dir, tmp, case, dtype, sampled[case.name])
            greedy, sampling = entry["greedy"], entry.get("sampling")
            write_mode_inputs(tmp / case.name, case, config.vocab_size, greedy and greedy["max_new_tokens"],
                              sampling and (SamplingSettings.from_dict(sampling["settings"]), sampling["ids"]))  # fmt: skip
            manifest["cases"].append(entry)
        (tmp / CASES_FILE).write_text("".join(case.name + "\n" for case in cases))  # the case names, one per line
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if checkpoints and dtype == np.float32:
            write_float32_budgets(model_dir, tmp, cases, command)
    return out_dir


def write_float32_budgets(model_dir: ModelDir, root: Path, cases: list[Case], command: str | None) -> None:
    """The set's float32 budgets (gpt2core.verification.precision.budgets): its own checkpoints, transformers
    in float32, against transformers' float64 pass on each case (the float32 model released first)."""
    from .model_dir import file_sha256
    from .precision import budgets

    errors = budgets.against_float64(model_dir, cases, lambda case, names: budgets.SavedArrays(root, case, names))
    budgets.write(root, budgets.document(errors, "float32", file_sha256(root / MANIFEST), command))


def sampling_cases(cases: list[Case], n_positions: int) -> dict:
    """case name -> the sampling settings recorded on it: SAMPLING_RUNS in order over the cases whose
    continuation fits, batches (left padding included) first."""
    fits = [c for c in cases if c.input_ids.shape[1] + max(s.max_new_tokens for s in SAMPLING_RUNS) <= n_positions]
    fits.sort(key=lambda c: c.input_ids.shape[0] == 1)  # stable: batches first, then the given order
    return {c.name: s for c, s in zip(fits, SAMPLING_RUNS)}


def save_array(out_dir: Path, file: str, name: str, array: np.ndarray) -> dict:
    """Write one .npy file; its manifest entry (name, file, shape, dtype, sha256)."""
    np.save(out_dir / file, array, allow_pickle=False)
    return {"name": name, "file": file, "shape": list(array.shape), "dtype": array.dtype.name, "sha256": file_sha256(out_dir / file)}


def write_sampling(model_dir: ModelDir, out_dir: Path, case: Case, dtype: np.dtype, settings) -> dict:
    """transformers' sampled generation on the case: its settings, path and per-step scores and raw logits."""
    from .capture import capture_sampling

    ids, scores, logits = capture_sampling(model_dir, case, dtype, settings)
    entries = []
    for step in range(scores.shape[0]):
        for kind, arrays in ((SCORES, scores), (LOGITS, logits)):
            name = step_name(kind, step)
            entries.append(save_array(out_dir, f"{case.name}/{name}.npy", name, arrays[step]))
    return {"settings": settings.as_dict(), "ids": ids.tolist(), "checkpoints": entries}


def write_case(model_dir: ModelDir, out_dir: Path, case: Case, dtype: np.dtype, checkpoints: bool = True,
               generation: bool = True) -> dict:  # fmt: skip
    """Capture one case into out_dir/<case>/ (checkpoints, inputs); its manifest entry."""
    from .capture import capture, capture_greedy

    arrays = capture(model_dir, case, dtype) if checkpoints else {}
    (out_dir / case.name).mkdir()
    entries = [save_array(out_dir, f"{case.name}/{name}.npy", name, array) for name, array in arrays.items()]
    mask = np.ones_like(case.input_ids) if case.attention_mask is None else case.attention_mask
    inputs = (("input_ids", case.input_ids), ("attention_mask", mask), ("position_ids", case.position_ids),
              ("lengths", mask.sum(axis=1)))  # fmt: skip
    for name, array in inputs:
        np.save(out_dir / case.name / f"{name}.npy", np.asarray(array, dtype="<i8"), allow_pickle=False)
    fits = checkpoints and generation and case.input_ids.shape[1] + GREEDY_TOKENS <= model_dir.config.n_positions
    greedy = capture_greedy(model_dir, case, dtype, GREEDY_TOKENS).tolist() if fits else None
    return {
        "name": case.name, "texts": case.texts, "input_ids": case.input_ids.tolist(),
        "attention_mask": None if case.attention_mask is None else case.attention_mask.tolist(),
        "position_ids": case.position_ids.tolist(), "checkpoints": entries,
        "greedy": None if greedy is None else {"max_new_tokens": GREEDY_TOKENS, "ids": greedy},
    }  # fmt: skip


def how_to_create(model_dir, out_dir) -> str:
    return f"create them with: gpt2core references --model {model_dir} --out {out_dir}"


class CapturedCase:
    """A case with its captured checkpoints held in memory (the same interface as ReferenceCase)."""

    def __init__(self, case: Case, arrays: dict[str, np.ndarray]):
        self.name, self.input_ids, self.attention_mask = case.name, case.input_ids, case.attention_mask
        self.position_ids = case.position_ids
        self.arrays = arrays
        self.greedy = None  # no generation captured

    def array(self, name: str) -> np.ndarray:
        return self.arrays[name]


class ReferenceCase:
    """A case of a loaded reference set; `array(name)` reads and checks one checkpoint file."""

    def __init__(self, root: Path, entry: dict, model_dir):
        self.root, self.entry, self.model_dir = root, entry, model_dir
        self.name = entry["name"]
        self.input_ids = np.array(entry["input_ids"], dtype=np.int64)
        mask = entry.get("attention_mask")
        self.attention_mask = None if mask is None else np.array(mask, dtype=np.int64)
        self.position_ids = np.array(entry["position_ids"], dtype=np.int64)
        self.files = {c["name"]: c for c in entry["checkpoints"]}  # the forward pass's checkpoints
        sampling = entry.get("sampling")
        # transformers' sampled generation: (settings, ids [B, T + n]), and its per-step files
        self.sampling, self.sampling_files = None, {}
        if sampling is not None:
            self.sampling = (SamplingSettings.from_dict(sampling["settings"]), np.array(sampling["ids"], dtype=np.int64))
            self.sampling_files = {c["name"]: c for c in sampling["checkpoints"]}
        greedy = entry["greedy"]
        # transformers' greedy continuation: ids [B, T + n], n <= max_new_tokens; None when it does not fit
        self.greedy = None if greedy is None else (int(greedy["max_new_tokens"]), np.array(greedy["ids"], dtype=np.int64))

    def array(self, name: str) -> np.ndarray:
        info = self.files.get(name) or self.sampling_files.get(name)
        if info is None:
            raise ReferencesError(f"{self.root / MANIFEST}: case {self.name} has no checkpoint {name}")
        path = self.root / info["file"]
        if not path.is_file():
            raise ReferencesError(
                f"reference file {path} is missing; {how_to_create(self.model_dir or '<model dir>', self.root)}"
            )
        if file_sha256(path) != info["sha256"]:
            raise ReferencesError(f"reference file {path} was altered or truncated (its sha256 differs from {MANIFEST})")
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ReferencesError(f"reference file {path} is not a readable .npy file ({e})") from None
        if list(array.shape) != info["shape"] or array.dtype.name != info["dtype"]:
            raise ReferencesError(
                f"reference file {path}: {array.dtype.name} {list(array.shape)}, manifest says {info['dtype']} {info['shape']}"
            )
        return array


class References:
    """A reference set read from disk (see `load_references`)."""

    def __init__(self, root: Path, manifest: dict, model_dir):
        self.root, self.manifest = root, manifest
        self.dtype = np.dtype(manifest["dtype"])
        self.config = manifest["model"]["config"]  # the model's config.json as the set recorded it
        self.checkpoint_names = checkpoint_names(self.config["n_layer"])
        self.cases = [ReferenceCase(root, c, model_dir) for c in manifest["cases"]]

    def case(self, name: str) -> ReferenceCase:
        for c in self.cases:
            if c.name == name:
                return c
        raise ReferencesError(f"{self.root}: no case {name!r} (cases: {[c.name for c in self.cases]})")


def load_references(ref_dir, model_dir: ModelDir | Path | None = None) -> References:
    """Read a reference set; with model_dir (a ModelDir or a path), refuse it unless it was made for exactly
    these weights."""
    root = Path(ref_dir)
    model_dir = None if model_dir is None else read_model_dir(model_dir)
    manifest_file = root / MANIFEST
    if not manifest_file.is_file():
        raise ReferencesError(f"no references in {root} ({MANIFEST} not found); {how_to_create(model_dir or '<model dir>', root)}")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            raise ReferencesError(f"{manifest_file}: format {found!r}, expected {FORMAT!r}")
        if manifest["dtype"] not in ("float32", "float64"):
            raise ReferencesError(f"{manifest_file}: dtype {manifest['dtype']!r}, expected float32 or float64")
        theirs = manifest["model"]["weights_sha256"]
        if not isinstance(theirs, dict):
            raise TypeError("model.weights_sha256 must be an object")
        for case in manifest["cases"]:
            sampled = case["sampling"]["checkpoints"] if case.get("sampling") is not None else []
            for c in case["checkpoints"] + sampled:
                file = c["file"]
                if not isinstance(file, str) or ".." in Path(file).parts or Path(file).is_absolute():
                    raise ReferencesError(f"{manifest_file}: checkpoint file {file!r} lies outside {root}")
                if not (isinstance(c["name"], str) and isinstance(c["dtype"], str) and isinstance(c["sha256"], str)
                        and isinstance(c["shape"], list) and all(type(n) is int and n >= 0 for n in c["shape"])):  # fmt: skip
                    raise TypeError(f"checkpoint entry {c!r} needs name, file, shape (non-negative ints), dtype, sha256")
        refs = References(root, manifest, model_dir)  # converts ids, masks and positions to arrays
        for case in refs.cases:
            shapes = {case.input_ids.shape, case.position_ids.shape}
            if case.attention_mask is not None:
                shapes.add(case.attention_mask.shape)
            if len(shapes) != 1 or case.input_ids.ndim != 2:
                raise ValueError(f"case {case.name}: input_ids, attention_mask and position_ids must share one [B, T] shape")
            if case.sampling is not None:
                settings, ids = case.sampling
                B, T = case.input_ids.shape
                if ids.ndim != 2 or ids.shape != (B, T + settings.max_new_tokens) or not np.array_equal(ids[:, :T], case.input_ids):
                    raise ValueError(f"case {case.name}: sampled ids of shape {list(ids.shape)} do not continue its input ids "
                                     f"[{B}, {T}] by {settings.max_new_tokens} tokens")  # fmt: skip
            if case.greedy is not None:
                n, ids = case.greedy
                B, T = case.input_ids.shape
                if ids.ndim != 2 or ids.shape[0] != B or not T < ids.shape[1] <= T + n:
                    raise ValueError(f"case {case.name}: greedy ids of shape {list(ids.shape)} do not continue [{B}, {T}] by 1 to {n} tokens")
    except ReferencesError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as e:
        raise ReferencesError(f"{manifest_file}: malformed manifest ({type(e).__name__}: {e})") from None
    if model_dir is not None:
        ours = model_dir.weights_sha256
        if ours != theirs:
            raise ReferencesError(
                f"references in {root} were made for other weights (sha256 {theirs}), not for the model in "
                f"{model_dir} ({ours}); make new ones with: gpt2core references --model {model_dir} --out NEW_DIR"
            )
    return refs

