"""Budgets measured, not guessed: per checkpoint and case, BUDGET_FACTOR times the honest implementation's
error (gpt2core.verification.precision.honest), never below the class's floor.

The honest error of a checkpoint on a case is max |honest - truth| over the entries the model defines (token
positions, unmasked scores), where truth is transformers' float64 pass on the same case. For float32 the
honest implementation is transformers in float32, i.e. the reference set itself: its budget is what float32
arithmetic earns on this input (sharp attention, trained weights), not a fixed number.

Stored with the reference set, one small JSON file per class (`<set>/budgets/<class>.json`, format
gpt2core-budgets/1): the honest errors and the reference's scale per case and checkpoint, the honest
implementation's next-token distribution metrics, the set's manifest sha256 they belong to, the versions
and the command. A float32 set gets its float32 budgets when it is written; `gpt2core budgets` computes
any class's (and with --check recomputes them and compares with the stored ones).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..batch_layout import defined_entries, token_mask
from ..errors import ReferencesError
from ..model_dir import file_sha256
from ..subject import kind_of
from ..tolerances import BUDGET_FACTOR, KL_FACTOR, KL_FLOOR
from . import distribution
from .classes import PrecisionClass, precision_class

FORMAT = "gpt2core-budgets/1"
DIRECTORY = "budgets"


def honest_error(name: str, honest: np.ndarray, truth: np.ndarray, tokens: np.ndarray) -> tuple[float, float]:
    """(max |honest - truth|, max |truth|) over the entries of checkpoint `name` the model defines, masked
    scores (truth at float64's minimum) left out."""
    if honest.shape != truth.shape:
        raise ReferencesError(f"{name}: the honest implementation gave {list(honest.shape)}, the float64 pass {list(truth.shape)}")
    keep = defined_entries(name, tokens, truth.shape) & (truth != np.finfo(truth.dtype).min)
    if not keep.any():
        return 0.0, 0.0
    diff = np.abs(honest.astype(np.float64)[keep] - truth[keep])
    return float(diff.max()), float(np.abs(truth[keep]).max())


def case_errors(honest: dict, truth: dict, case) -> dict:
    """{"checkpoints": {name: [honest error, scale]}, "distribution": honest-vs-truth metrics summary} of one case."""
    tokens = token_mask(case)
    checkpoints = {n: list(honest_error(n, honest[n], truth[n], tokens)) for n in truth}
    metrics = distribution.per_position(honest["logits"], truth["logits"], tokens, case.input_ids)
    return {"checkpoints": checkpoints, "distribution": distribution.summary([metrics])}


def against_float64(model_dir, cases, honest_of) -> dict:
    """{case name: case_errors} of the arrays `honest_of(case, names)` gives against transformers' float64
    pass, captured one case at a time (one case's arrays held, and transformers' float64 model alone)."""
    from ..capture import capture
    from ..hf import release_hf_models

    release_hf_models()  # whatever model was loaded goes before the float64 one
    out = {}
    for case in cases:
        truth = capture(model_dir, case, np.float64)
        out[case.name] = case_errors(honest_of(case, list(truth)), truth, case)
    release_hf_models()
    return out


class SavedArrays(Mapping):
    """The checkpoints `names` of a case saved as <directory>/<case>/<name>.npy (a reference set's layout), each
    read when it is looked up and not kept: beside the float64 pass, one checkpoint is held at a time."""

    def __init__(self, directory: str | Path, case, names):
        self.root, self.names = Path(directory) / case.name, list(names)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        return np.load(self.root / f"{name}.npy", allow_pickle=False)

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def measure(model_dir, cases, precision: str) -> dict:
    """{case name: case_errors} for `precision`'s honest implementation against transformers' float64 pass. The
    honest arrays are written to a temporary directory first, so the two models are never resident together
    and one case is held at a time."""
    import tempfile

    from ..capture import capture
    from .honest import float16_attention, honest_model

    model = honest_model(model_dir, precision)
    with tempfile.TemporaryDirectory(prefix="gpt2core-honest-") as tmp:
        with float16_attention(model, precision):
            for case in cases:
                (Path(tmp) / case.name).mkdir()
                for name, array in capture(model_dir, case, np.float32, model=model).items():
                    np.save(Path(tmp) / case.name / f"{name}.npy", array, allow_pickle=False)
        del model
        return against_float64(model_dir, cases, lambda case, names: SavedArrays(tmp, case, names))


def document(cases: dict, precision: str, manifest_sha256: str, command: str | None) -> dict:
    from ..versions import versions

    return {"format": FORMAT, "precision": precision, "references_manifest_sha256": manifest_sha256,
            "versions": versions(), "command": command, "cases": cases}  # fmt: skip


def path_of(root: Path, precision: str) -> Path:
    return Path(root) / DIRECTORY / f"{precision}.json"


def write(root: Path, doc: dict) -> Path:
    path = path_of(root, doc["precision"])
    path.parent.mkdir(exist_ok=True)
    return atomic_write_text(path, json.dumps(doc, indent=1))


def read(root: Path, precision: str, manifest_sha256: str) -> dict | None:
    """The stored budgets of `precision` for the set at root (None when there are none); a file that does not
    belong to this set's manifest, or is malformed, is a ReferencesError."""
    path = path_of(root, precision)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("precision") != precision:
            found = f"{doc.get('format')!r} for {doc.get('precision')!r}" if isinstance(doc, dict) else repr(doc)
            raise ValueError(f"format {found}, expected {FORMAT!r} for {precision!r}")
        for case in doc["cases"].values():
            for pair in case["checkpoints"].values():
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, (int, float)) and x >= 0 for x in pair)):
                    raise ValueError(f"a checkpoint's entry {pair!r} is not [honest error, scale]")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ReferencesError(f"{path}: malformed budgets ({e}); recompute them with gpt2core budgets --references {root} --precision {precision} --force") from None
    if doc["references_manifest_sha256"] != manifest_sha256:
        raise ReferencesError(f"{path} belongs to another reference set (its manifest's sha256 differs); recompute with "
                              f"gpt2core budgets --references {root} --precision {precision} --force")  # fmt: skip
    return doc


class Budgets:
    """What a subject of precision class `cls` is held to on a reference set of dtype `dtype`: per checkpoint
    and case max(floor * max|ref|, BUDGET_FACTOR * honest error), and at the logits' distribution
    max(KL_FLOOR, KL_FACTOR * the honest KL), mean and max."""

    def __init__(self, cls: PrecisionClass, dtype, doc: dict | None):
        self.cls, self.doc = cls, doc
        self.tol = {np.dtype(dtype): cls.floor}  # compare's relative floor, for the reference's dtype

    @property
    def calibrated(self) -> bool:
        return self.doc is not None

    def atol(self, case: str, name: str) -> float:
        """The absolute budget BUDGET_FACTOR * honest error of checkpoint `name` (a step suffix ignored) on
        case (0.0 uncalibrated: the floor alone)."""
        if self.doc is None:
            return 0.0
        entry = self.doc["cases"].get(case, {}).get("checkpoints", {}).get(name.split("@")[0])
        if entry is None:
            raise ReferencesError(f"the {self.cls.name} budgets have no {name} on case {case}: recompute them with gpt2core budgets --force")
        return BUDGET_FACTOR * entry[0]

    def distribution(self) -> dict | None:
        """{"kl_mean", "kl_max"}: the budgets of the engine's KL divergence at the logits (None uncalibrated),
        with the honest implementation's own figures."""
        if self.doc is None:
            return None
        honest = distribution.summary_of_summaries([c["distribution"] for c in self.doc["cases"].values()])
        return {"kl_mean": max(KL_FLOOR, KL_FACTOR * honest["kl_mean"]), "kl_max": max(KL_FLOOR, KL_FACTOR * honest["kl_max"]),
                "honest": honest}  # fmt: skip


def budgets_for(refs, precision: str) -> Budgets:
    """The Budgets of `precision` on a loaded reference set: the stored ones (calibrated classes), or the floor
    (float64). A calibrated class without stored budgets is a ReferencesError saying how to compute them."""
    cls = precision_class(precision)
    if cls.reference_dtype != refs.dtype.name:
        raise ReferencesError(f"precision {cls.name} is compared with {cls.reference_dtype} references, not the {refs.dtype.name} set in {refs.root}")
    if not cls.calibrated:
        return Budgets(cls, refs.dtype, None)
    doc = read(refs.root, cls.name, file_sha256(Path(refs.root) / "manifest.json"))
    if doc is None:
        raise ReferencesError(f"{refs.root} holds no {cls.name} budgets ({path_of(refs.root, cls.name)}); compute them with: "
                              f"gpt2core budgets --references {refs.root} --precision {cls.name}")  # fmt: skip
    missing = sorted({c.name for c in refs.cases} - set(doc["cases"]))
    if missing:
        raise ReferencesError(f"{path_of(refs.root, cls.name)} has no budgets for cases {missing}")
    return Budgets(cls, refs.dtype, doc)


def ensure_budgets(refs, model_dir, precision: str, command: str | None = None, force: bool = False) -> dict | None:
    """Compute and store `precision`'s budgets on the set unless stored already (or `force`); returns the
    stored document (None for an uncalibrated class)."""
    cls = precision_class(precision)
    if not cls.calibrated:
        return None
    manifest_sha = file_sha256(Path(refs.root) / "manifest.json")
    doc = None if force else read(refs.root, cls.name, manifest_sha)
    if doc is None:
        doc = document(measure(model_dir, refs.cases, cls.name), cls.name, manifest_sha, command)
        write(refs.root, doc)
    return doc


def largest_change(stored: dict, fresh: dict) -> float:
    """The largest relative difference between two {case: case_errors} of the same cases (every honest error
    and scale); inf when they hold different cases or checkpoints."""
    if set(stored) != set(fresh):
        return float("inf")
    worst = 0.0
    for case, entry in stored.items():
        a, b = entry["checkpoints"], fresh[case]["checkpoints"]
        if set(a) != set(b):
            return float("inf")
        for name in a:
            for x, y in zip(a[name], b[name]):
                if x != y:
                    worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
    return worst


def by_kind(doc: dict) -> dict:
    """checkpoint kind -> {"honest_rel": the worst honest error / max|ref| over layers and cases, "budget_rel":
    the budget it gives relative to max|ref| (never below the class's floor)}, in forward-pass order."""
    cls = precision_class(doc["precision"])
    out: dict[str, dict] = {}
    for entry in doc["cases"].values():
        for name, (err, scale) in entry["checkpoints"].items():
            rel = err / scale if scale else 0.0
            k = out.setdefault(kind_of(name), {"honest_rel": 0.0})
            k["honest_rel"] = max(k["honest_rel"], rel)
    for k in out.values():
        k["budget_rel"] = max(cls.floor, BUDGET_FACTOR * k["honest_rel"])
    return out
