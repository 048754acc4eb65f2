"""Engines in any language: checkpoint dumps (.npy files) read through a declared map, as a subject.

An engine runs the cases of a reference set (each case's `input_ids.npy`, `attention_mask.npy` and
`position_ids.npy`, int64 [B, T] left-padded, and `lengths.npy`, int64 [B], the tokens of each row) and
writes its checkpoints as .npy files in its own layout. A map (JSON) declares that layout, so the engine
never rewrites its tensors into gpt2core's:

{
  "format": "gpt2core-map/2",            (gpt2core-map/1 files are read the same way)
  "engine": "my-engine",                 the name reports give it
  "dtype": "float32",                    its precision class (gpt2core.verification.precision.classes):
                                         float64, float32, float16, bfloat16, int8, float32-f16kv, gguf-f16
                                         (f16), gguf-q8_0 (q8_0), gguf-q4_0 (q4_0); held to that class's
                                         measured budgets against references of the class's dtype (float32
                                         for all but float64). Dump files: float64 for float64; float32
                                         for float32 and int8; float16 or float32 for float16 and the
                                         llama.cpp classes; bfloat16 as raw bits in uint16 files, or float32
  "deviations": [{"checkpoints": "h*.mlp_act", "tolerance": 2e-3, "reason": "...", "and_after": true}],
                                         known deviations, WAIVED within their tolerance (never a plain
                                         PASS; see gpt2core.verification.precision.deviations)
  "batch_layout": "right-padded",        how it lays out a batch: "left-padded" (gpt2core's cases, the
                                         default), "right-padded" or "packed" (every row's tokens on one
                                         axis, no batch axis); see gpt2core.verification.batch_layout
  "runs": {"batch": false, "padding": false},
                                         cases it cannot run (several rows; rows of different lengths)
                                         are "not run"
  "single_row_without_batch": true,      a case of one row is written without the layout's b axis
  "masked_scores": "-inf",               how masked attention scores are written: "min" (the dtype's
                                         minimum, as transformers), "-inf", "not computed" (ignored), or
                                         {"at_or_below": -1e9} (any value at or below it is masked)
  "modes": ["chained", "isolated", "cached", "generate", "sampled"],
                                         what the engine runs (default ["chained"]); each is read from files
                                         under the case's directory, see "Modes through files" below
  "decode": {"checkpoints": {"h{i}.k": {"file": "{case}/h{i}.kcache.npy", "layout": "b h s d"}}},
                                         cached mode only: specs that differ for a decoding step (default:
                                         the same as "checkpoints")
  "checkpoints": {                       only what the engine provides; the rest is "not provided"
    "embeddings": {"file": "{case}/embeddings.npy", "layout": "t c"},
    "h{i}.q": {"file": "{case}/h{i}.qkv.npy", "layout": "t (three h d)", "select": {"three": 0}},
    "h{i}.ln_1": {"file": "{case}/ln_1.npy", "layout": "l b t c"},
    "h{i}.attn_scores": {"file": "{case}/kq-{i}.npy", "layout": "h t s", "unscaled": true, "key_window": true},
    "logits": {"file": "{case}/logits.npy", "layout": "t v", "vocab_padded": true}
  }
}

Per checkpoint:
  file          a path under the dump directory with {case} and {i} filled in (default "{case}/{name}.npy");
                {i} is the layer number plus `layer_offset`
  layout        an einops pattern of the dump's axes (default: gpt2core's own): b batch, t position
                (queries), s key position, h head, d head size, c channel (C, or 4C in the MLP), v vocabulary,
                l layer (a stacked file of every provided layer, with no {i} in its name: the k-th provided
                layer at index k + layer_offset), and any name of the map's own for a fused axis taken apart
                with `select` (q, k and v from one [T, 3C] tensor: "t (three h d)" with three = 0, 1, 2). A
                layout without b is allowed for cases of one row, and is the rule for a packed batch.
  select        {axis: index} for the map's own axes
  vocab_padded  logits only: the last axis is at least the vocabulary and sliced to it
  key_window    k, v, attn_scores, attn_probs: the key axis s may be longer than the case (a KV-cache
                window); the case's keys are taken from where its queries are, the rest ignored
  unscaled      attn_scores only: written as q.k before the 1/sqrt(d) scale; gpt2core scales them
  layers        which layers the engine dumps: a list, or {"start": 0, "step": 2}; the rest are "not provided"
  layer_offset  added to the layer number for {i} and to the index on the l axis (default 0)
Modes through files. The reference set gives each case's inputs for every mode (gpt2core.verification.
mode_inputs: decode_split.npy, unrelated_ids.npy, generate_tokens.npy, sample_ids.npy, sample_settings.npy);
the engine writes, per case, beside its chained dumps:
  isolated   <case>/stage/...           each checkpoint computed by the engine's own stage from the
                                        reference's inputs (the set's <case>/<checkpoint>.npy files, gpt2core's
                                        layout), written as its chained dump is ({case} is <case>/stage)
  cached     <case>/decode/t<t>/...     after the unrelated request (prefill only) and a prefill of positions
                                        [0, split), one directory per decoded position t = split .. T-1: that
                                        step's checkpoints for every row, one query position (t = 1) against the
                                        keys 0 .. t of its cache (s = t + 1, or a longer window with key_window)
                                        ({case} is <case>/decode/t<t>; left-padded batches only)
  generate   <case>/generated_ids.npy   int [B, T + n]: each row's prompt then its n greedy tokens, left-padded
                                        as the case, or each row's tokens first for a right-padded or packed
                                        engine (n from generate_tokens.npy)
  sampled    <case>/sample.scores@step=N.npy
                                        float32 [B, V] per step N < n: the processed scores along the given
                                        sampled path (sample_ids.npy: its tokens forced), after temperature,
                                        top-k and top-p (sample_settings.npy), filtered tokens -inf
A mode the map declares is verified, and a missing file is a failure naming it; a mode it leaves out is
"not run".
Every key is checked: an unknown one is an error naming the closest known key (keys starting with "_"
are comments). Dumps are never unpickled; a missing, unreadable, truncated, object-typed or wrongly shaped
file is a DumpError naming the file and what was expected.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .batch_layout import ids_to_left_padded, to_left_padded, token_mask
from .errors import DumpError
from .precision.classes import PrecisionClass, precision_class
from .precision.deviations import Deviation, parse_deviations
from .mode_inputs import Unrelated
from .sampling import SCORES, step_name
from .subject import BATCH_LAYOUTS, CAPABILITIES, LAYER_CHECKPOINTS, MODEL_CHECKPOINTS, MODES, kind_of, masked_scores_problem

FORMAT = "gpt2core-map/2"
FORMATS = ("gpt2core-map/1", FORMAT)  # /1 maps are read unchanged: /2 only adds keys
LETTERS = {"batch": "b", "head": "h", "position": "t", "query": "t", "key": "s", "dim": "d", "channel": "c",
           "token": "v"}  # fmt: skip
TOP_KEYS = ("format", "engine", "dtype", "batch_layout", "runs", "single_row_without_batch", "masked_scores", "deviations",
            "modes", "decode", "checkpoints")  # fmt: skip
DECODE_KEYS = ("checkpoints",)
RUNS_KEYS = ("batch", "padding")
SPEC_KEYS = ("file", "layout", "select", "vocab_padded", "key_window", "unscaled", "layers", "layer_offset")
LAYERS_KEYS = ("start", "step")
KEY_KINDS = ("k", "v", "attn_scores", "attn_probs")  # the checkpoints with a key axis


def canonical_layout(kind: str) -> str:
    """gpt2core's layout of a checkpoint kind as an einops pattern, e.g. 'attn_scores' -> 'b h t s'."""
    axes = LAYER_CHECKPOINTS.get(kind) or MODEL_CHECKPOINTS[kind]
    return " ".join(LETTERS[a] for a in axes)


def letters_of(pattern: str) -> list[str]:
    return re.findall(r"[A-Za-z_][A-Za-z0-9_]*", pattern)


def target_layout(kind: str, layout: str) -> str:
    """gpt2core's layout for a dump of `kind` written as `layout`: keys and values of a full forward pass
    may name their key axis t (every position is a key), as engines that keep no cache do."""
    target = canonical_layout(kind)
    letters = letters_of(layout)
    if kind in ("k", "v") and "s" not in letters and "t" in letters:
        target = target.replace("s", "t")
    return target


def did_you_mean(word, known) -> str:
    """"; did you mean 'x'?" with the entry of `known` closest to `word` (difflib's best match), or "" for none close."""
    close = difflib.get_close_matches(str(word), known)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(obj: dict, known: tuple[str, ...], where: str) -> None:
    """Refuse a key of `obj` that is not in `known` (keys starting with '_' are comments), naming the closest."""
    for key in obj:
        if key in known or (isinstance(key, str) and key.startswith("_")):
            continue
        raise DumpError(f"{where}: unknown key {key!r}{did_you_mean(key, known)} (known: {', '.join(known)})")


def is_int(value) -> bool:
    return type(value) is int


class DumpMap:
    """A parsed, checked map file (see the module docstring)."""

    engine: str
    dtype: Any  # a precision's name; anything else is refused by precision_class
    precision: PrecisionClass
    deviations: tuple[Deviation, ...]
    batch_layout: str
    runs_batch: bool
    runs_padding: bool
    single_row_without_batch: bool
    masked_scores: Any  # "min", or a number (masked_scores_problem checks it)
    specs: dict[str, dict]
    modes: tuple[str, ...]
    decode_specs: dict[str, dict]

    def __init__(self, data, source: str = "map"):
        if not isinstance(data, dict):
            raise DumpError(f"{source}: a map is a JSON object with \"format\": {FORMAT!r}, got {type(data).__name__}")
        if data.get("format") not in FORMATS:
            raise DumpError(f"{source}: format {data.get('format')!r}, expected {FORMAT!r}")
        check_keys(data, TOP_KEYS, source)
        self.engine = str(data.get("engine", "engine"))
        self.dtype = data.get("dtype", "float32")
        try:
            self.precision = precision_class(self.dtype if isinstance(self.dtype, str) else repr(self.dtype))
            self.deviations = parse_deviations(data.get("deviations"), source)
        except ValueError as e:
            raise DumpError(f"{source}: dtype: {e}" if "precision" in str(e) else str(e)) from None
        self.batch_layout = data.get("batch_layout", "left-padded")
        if self.batch_layout not in BATCH_LAYOUTS:
            raise DumpError(f"{source}: batch_layout {self.batch_layout!r}; expected one of {', '.join(BATCH_LAYOUTS)}")
        runs = data.get("runs", {})
        if not isinstance(runs, dict):
            raise DumpError(f"{source}: runs must be an object of booleans 'batch' and 'padding', got {runs!r}")
        check_keys(runs, RUNS_KEYS, f"{source}: runs")
        if not all(isinstance(v, bool) for v in runs.values()):
            raise DumpError(f"{source}: runs must be an object of booleans 'batch' and 'padding', got {runs!r}")
        self.runs_batch, self.runs_padding = runs.get("batch", True), runs.get("padding", True)
        self.single_row_without_batch = data.get("single_row_without_batch", False)
        if type(self.single_row_without_batch) is not bool:
            raise DumpError(f"{source}: single_row_without_batch must be true or false")
        self.masked_scores = data.get("masked_scores", "min")
        problem = masked_scores_problem(self.masked_scores)
        if problem is not None:
            raise DumpError(f"{source}: {problem}")
        specs = data.get("checkpoints")
        if not isinstance(specs, dict) or "logits" not in specs:
            raise DumpError(f"{source}: 'checkpoints' must be an object that provides at least 'logits'")
        self.specs = {}
        for name, spec in specs.items():
            kind = kind_of(name)
            templated = name.startswith("h{i}.") and kind in LAYER_CHECKPOINTS
            if not (templated or name in MODEL_CHECKPOINTS):
                known = [f"h{{i}}.{k}" for k in LAYER_CHECKPOINTS] + list(MODEL_CHECKPOINTS)
                raise DumpError(f"{source}: unknown checkpoint {name!r}{did_you_mean(name, known)} "
                                f"(per-layer ones are written 'h{{i}}.<kind>' with kind one of {', '.join(LAYER_CHECKPOINTS)}, "
                                f"the others {', '.join(MODEL_CHECKPOINTS)})")  # fmt: skip
            spec = {} if spec is None else spec
            if not isinstance(spec, dict):
                raise DumpError(f"{source}: checkpoint {name!r}: expected an object with keys among {list(SPEC_KEYS)}, got {spec!r}")
            check_keys(spec, SPEC_KEYS, f"{source}: checkpoint {name!r}")
            self.specs[name] = self._checked(name, kind, spec, source)
        self.modes = self._modes(data.get("modes", ["chained"]), source)
        self.decode_specs = self._decode_specs(data.get("decode"), source)

    def _modes(self, modes, source) -> tuple[str, ...]:
        if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes) or "chained" not in modes:
            raise DumpError(f"{source}: modes must be a list holding \"chained\" and any of {', '.join(MODES[1:])}, got {modes!r}")
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise DumpError(f"{source}: unknown mode {unknown[0]!r}{did_you_mean(unknown[0], MODES)} "
                            f"(known: {', '.join(MODES)})")  # fmt: skip
        if "cached" in modes and self.batch_layout != "left-padded":
            raise DumpError(f"{source}: the cached mode's step dumps are read left-padded; batch_layout is {self.batch_layout!r}")
        return tuple(modes)

    def _decode_specs(self, decode, source) -> dict:
        """The specs of a decoding step's dumps: the chained ones, with the map's "decode" overrides."""
        if decode is None:
            return dict(self.specs)
        if "cached" not in self.modes:
            raise DumpError(f"{source}: decode describes the cached mode's step dumps, but modes does not hold \"cached\"")
        if not isinstance(decode, dict) or not isinstance(decode.get("checkpoints", {}), dict):
            raise DumpError(f"{source}: decode must be an object {{\"checkpoints\": {{...}}}}, got {decode!r}")
        check_keys(decode, DECODE_KEYS, f"{source}: decode")
        specs = dict(self.specs)
        for name, spec in decode.get("checkpoints", {}).items():
            where = f"{source}: decode: checkpoint {name!r}"
            if name not in self.specs:
                raise DumpError(f"{where}: not among the map's checkpoints (a step provides what the chained pass provides)")
            if not isinstance(spec, dict):
                raise DumpError(f"{where}: expected an object with keys among {list(SPEC_KEYS)}, got {spec!r}")
            check_keys(spec, SPEC_KEYS, where)
            specs[name] = self._checked(name, kind_of(name), spec, f"{source}: decode")
        return specs

    def _checked(self, name, kind, spec, source) -> dict:
        where = f"{source}: checkpoint {name!r}"
        layout = spec.get("layout", canonical_layout(kind))
        select = spec.get("select", {})
        if not isinstance(layout, str) or not isinstance(select, dict) or not all(is_int(v) for v in select.values()):
            raise DumpError(f"{where}: layout must be an einops pattern and select an object of integers")
        have = set(letters_of(layout))
        stacked = "l" in have
        per_layer = name.startswith("h{i}.")
        file = spec.get("file", "{case}/" + name + ".npy")
        if not isinstance(file, str) or ".." in Path(file).parts or Path(file).is_absolute() or "{case}" not in file:
            raise DumpError(f"{where}: file {file!r} must be a relative path holding {{case}}")
        if stacked and not per_layer:
            raise DumpError(f"{where}: layout {layout!r} has a layer axis l, but {name} is not a per-layer checkpoint")
        if per_layer and stacked == ("{i}" in file):
            raise DumpError(f"{where}: file {file!r} must hold {{i}} (one file per layer) or the layout a layer axis l "
                            "(one file of every layer), not both")  # fmt: skip
        if "l" in select:
            raise DumpError(f"{where}: the layer axis l is chosen by the layer, not by select")
        wanted = set(target_layout(kind, layout).split())
        extra = have - wanted - set(select) - {"l"}
        if wanted - have - {"b"} or extra:
            raise DumpError(f"{where}: layout {layout!r} must name the axes {target_layout(kind, layout)!r} (b may be "
                            f"left out) and select each other axis; missing {sorted(wanted - have - {'b'})}, "
                            f"not selected {sorted(extra)}")  # fmt: skip
        if self.batch_layout == "packed" and "b" in have:
            raise DumpError(f"{where}: layout {layout!r} has a batch axis b, but a packed batch has none (rows follow "
                            "one another on the t axis)")  # fmt: skip
        flags = {}
        for flag, kinds, said in (("vocab_padded", ("logits",), "logits"), ("key_window", KEY_KINDS, "k, v, attn_scores and attn_probs"),
                                  ("unscaled", ("attn_scores",), "attn_scores")):  # fmt: skip
            flags[flag] = spec.get(flag, False)
            if type(flags[flag]) is not bool or (flags[flag] and kind not in kinds):
                raise DumpError(f"{where}: {flag} is a boolean, for {said} only")
        if flags["key_window"] and "s" not in have:
            raise DumpError(f"{where}: key_window needs the key axis written s in the layout (got {layout!r})")
        layers, offset = spec.get("layers"), spec.get("layer_offset", 0)
        if (layers is not None or "layer_offset" in spec) and not per_layer:
            raise DumpError(f"{where}: layers and layer_offset are for per-layer checkpoints (h{{i}}.<kind>)")
        if not is_int(offset):
            raise DumpError(f"{where}: layer_offset must be an integer, got {offset!r}")
        if isinstance(layers, dict):
            check_keys(layers, LAYERS_KEYS, f"{where}: layers")
            start, step = layers.get("start", 0), layers.get("step", 1)
            if not (is_int(start) and is_int(step) and start >= 0 and step >= 1):
                raise DumpError(f"{where}: layers {layers!r}: start must be an integer >= 0 and step >= 1")
            layers = {"start": start, "step": step}  # the defaults filled in: layers_of reads both
        elif layers is not None and not (isinstance(layers, list) and layers and all(is_int(i) and i >= 0 for i in layers)
                                          and len(set(layers)) == len(layers)):  # fmt: skip
            raise DumpError(f"{where}: layers must be a list of distinct layer numbers or {{'start': 0, 'step': 2}}, got {layers!r}")
        return {"file": file, "layout": layout, "select": select, "layers": layers, "layer_offset": offset, **flags}

    @classmethod
    def from_file(cls, path) -> DumpMap:
        path = Path(path)
        if not path.is_file():
            raise DumpError(f"map file not found: {path}")
        try:
            data = json.loads(path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DumpError(f"{path}: not valid JSON ({e})") from None
        return cls(data, source=str(path))

    def layers_of(self, template: str, n_layer: int) -> list[int]:
        """The layers the map provides checkpoint `template` (h{i}.<kind>) for, in an n_layer model."""
        layers = self.specs[template]["layers"]
        if layers is None:
            return list(range(n_layer))
        if isinstance(layers, dict):
            return list(range(layers["start"], n_layer, layers["step"]))
        beyond = [i for i in layers if i >= n_layer]
        if beyond:
            raise DumpError(f"map: checkpoint {template!r} lists layers {beyond}, but the model has {n_layer}")
        return sorted(layers)

    def provides(self, n_layer: int) -> list[str]:
        """The checkpoint names this map provides for an n_layer model."""
        out = []
        for name in self.specs:
            out += [name.replace("{i}", str(i)) for i in self.layers_of(name, n_layer)] if "{i}" in name else [name]
        return out

    def notes(self) -> list[str]:
        """What gpt2core does to this map's dumps before comparing them, one line each (for the report)."""
        notes = []
        if self.batch_layout != "left-padded":
            notes.append(f"batch layout {self.batch_layout}: each row's tokens are taken from where the engine put them")
        for name, spec in self.specs.items():
            if "l" in letters_of(spec["layout"]):
                notes.append(f"{name}: one file of every layer ({spec['file']}, layer axis l)")
            if spec["key_window"]:
                notes.append(f"{name}: a key window; the case's keys are compared, the rest of the window ignored")
            if spec["unscaled"]:
                notes.append(f"{name}: written unscaled (q.k); gpt2core multiplies them by 1/sqrt(head size) before comparing")
        return notes


def load_npy(path: Path) -> np.ndarray:
    """A dump file as it is stored: never unpickled; missing or unreadable is a DumpError naming it."""
    if not path.is_file():
        raise DumpError(f"dump file {path} is missing")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DumpError(f"dump file {path} is not a readable .npy file ({e})") from None


def read_npy(path: Path) -> np.ndarray:
    """A dump file of floats: every way it can be broken named."""
    array = load_npy(path)
    if not isinstance(array, np.ndarray) or (array.dtype.kind != "f" and array.dtype != np.dtype("<u2")):
        raise DumpError(f"dump file {path}: dtype {getattr(array, 'dtype', type(array).__name__)}, expected floats "
                        "(or uint16 holding bfloat16 bits)")  # fmt: skip
    return array


class LazyCheckpoints(Mapping):
    """name -> array over `names`, each read by `read(name)` on lookup (a broken file raises then, for it alone)."""

    def __init__(self, names, read):
        self.names, self.read = names, read

    def __getitem__(self, name):
        if name not in self.names:
            raise KeyError(name)
        return self.read(name)

    def __contains__(self, name):  # without reading the file (Mapping's default would)
        return name in self.names

    def __iter__(self):
        return iter(sorted(self.names))

    def __len__(self):
        return len(self.names)


class StepView:
    """A decoding step of a case as the layout code sees it: the case's rows, one query position (t); its keys
    0 .. t are `read`'s keys. Steps are read left-padded only (a DumpMap refuses the cached mode otherwise), so
    the layout code needs no mask for them, only the rows and the one position."""

    def __init__(self, case, t: int):
        self.input_ids = case.input_ids[:, t : t + 1]


class DumpSubject:
    """The subject protocol over a directory of dumps and its map: the chained pass per case, and every mode
    the map declares (see the module docstring's "Modes through files")."""

    root: Path
    map: DumpMap
    name: str
    masked_scores: Any
    precision: str
    deviations: tuple[Deviation, ...]
    provides: frozenset[str]
    capabilities: frozenset[str]
    notes: list[str]

    def __init__(self, dumps_dir, dump_map: DumpMap, config):
        self.root, self.map, self.config = Path(dumps_dir), dump_map, config
        self.name = dump_map.engine
        self.masked_scores = dump_map.masked_scores
        self.precision = dump_map.precision.name
        self.deviations = dump_map.deviations
        self.provides = frozenset(dump_map.provides(config.n_layer))
        self.capabilities = frozenset(c for c, (mode, _) in CAPABILITIES.items() if mode in dump_map.modes)
        self.notes = dump_map.notes()
        self.files_read: set[Path] = set()  # every dump file a comparison asked for

    def file(self, path: Path) -> Path:
        """`path`, recorded as read (see files_not_read)."""
        self.files_read.add(path)
        return path

    def files_not_read(self) -> list[str]:
        """The .npy files under the dump directory that no comparison read (relative, sorted): what the engine wrote
        and the map does not declare, or cases and modes that did not run."""
        if not self.root.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.npy") if p.is_file() and p not in self.files_read)

    def can_run(self, case) -> str | None:
        """Why the engine cannot run the case (None: it can)."""
        B = case.input_ids.shape[0]
        if B > 1 and not self.map.runs_batch:
            return f"{B} rows, and the map says the engine runs one row at a time (runs.batch false)"
        if case.attention_mask is not None and not case.attention_mask.all() and not self.map.runs_padding:
            return "rows of different lengths, and the map says the engine runs no padded batch (runs.padding false)"
        return None

    def checkpoints(self, case) -> Mapping[str, np.ndarray]:
        """The provided checkpoints of the case, each read when it is looked up (a broken file raises
        DumpError for that checkpoint alone)."""
        return LazyCheckpoints(self.provides, lambda name: self.checkpoint(case, name))

    def checkpoint(self, case, name: str) -> np.ndarray:
        """One checkpoint of the case, read from its dump and brought into gpt2core's layout and dtype (the
        case's left padding; NaN at padding positions where the engine lays its batch out otherwise)."""
        return self.read(case, name, case.name, self.map.specs)

    def stage(self, name: str, case, ref) -> np.ndarray:
        """The engine's own stage `name` on the reference's inputs: <case>/stage/ (the engine read the inputs)."""
        return self.read(case, name, f"{case.name}/stage", self.map.specs)

    def decode(self, case, split: int):
        """Each decoding step t = split .. T-1 of the case, read from <case>/decode/t<t>/ (the engine ran the
        unrelated request and the prefill itself: the unrelated request yields nothing here)."""
        if isinstance(case, Unrelated):
            return
        for t in range(split, case.input_ids.shape[1]):
            yield LazyCheckpoints(self.provides, lambda name, t=t: self.step_checkpoint(case, name, t))

    def step_checkpoint(self, case, name: str, t: int) -> np.ndarray:
        """Checkpoint `name` of decoding step t: [B, ..., 1, ...] at its query position, keys 0 .. t."""
        return self.read(StepView(case, t), name, f"{case.name}/decode/t{t}", self.map.decode_specs, keys=t + 1)

    def generate(self, case, max_new_tokens: int) -> np.ndarray:
        """The engine's greedy continuation: <case>/generated_ids.npy, int [B, T + n]."""
        path = self.file(self.root / case.name / "generated_ids.npy")
        ids = load_npy(path)
        if ids.dtype.kind not in "iu":
            raise DumpError(f"dump file {path}: dtype {ids.dtype}, expected integer token ids [B, T + {max_new_tokens}]")
        # a right-padded or packed engine writes its rows right-padded: brought to the case's left padding
        return ids_to_left_padded(self.with_batch_axis(ids, case).astype(np.int64), token_mask(case), self.map.batch_layout)

    def sample_scores(self, case, settings, ids) -> Mapping[str, np.ndarray]:
        """The engine's processed scores along the sampled path: <case>/sample.scores@step=N.npy, float32 [B, V]."""
        names = [step_name(SCORES, n) for n in range(ids.shape[1] - case.input_ids.shape[1])]
        return LazyCheckpoints(names, lambda name: self.sampled_step(case, name))

    def sampled_step(self, case, name: str) -> np.ndarray:
        return self.with_batch_axis(read_npy(self.file(self.root / case.name / f"{name}.npy")), case)

    def with_batch_axis(self, array: np.ndarray, case) -> np.ndarray:
        """A per-row file ([B, ...]: greedy ids, sampled scores) of a one-row case written without its batch axis
        (single_row_without_batch), given it back."""
        if array.ndim == 1 and case.input_ids.shape[0] == 1 and self.map.single_row_without_batch:
            return array[None]
        return array

    def read(self, case, name: str, directory: str, specs: dict, keys: int | None = None) -> np.ndarray:
        """Checkpoint `name` from the dumps under <root>/<directory> (the template's {case}), in gpt2core's
        layout and the reference dtype; `keys`: a decoding step's key positions."""
        kind = kind_of(name)
        template = name if kind in MODEL_CHECKPOINTS else "h{i}." + kind
        spec = dict(specs[template])
        layer = int(name.split(".")[0][1:]) if kind in LAYER_CHECKPOINTS else None
        file = spec["file"].replace("{case}", directory)
        if layer is not None:
            file = file.replace("{i}", str(layer + spec["layer_offset"]))
        path = self.file(self.root / file)
        array = file_values(read_npy(path), self.map.precision, path)
        B = case.input_ids.shape[0]
        if B == 1 and self.map.single_row_without_batch and "b" in letters_of(spec["layout"]):
            spec["layout"] = " ".join(re.sub(r"\bb\b", " ", spec["layout"]).split())
        if "l" in letters_of(spec["layout"]):  # the k-th provided layer, at k + layer_offset
            index = self.map.layers_of(template, self.config.n_layer).index(layer) + spec["layer_offset"]  # ty: ignore[invalid-argument-type] (a per-layer template: layer is set)
            spec["select"] = {"l": index, **spec["select"]}
        out = to_canonical(array, spec, kind, case, self.map.batch_layout, self.config, str(path), keys)
        if spec["unscaled"]:
            out = scaled_scores(out, self.config.head_dim, self.masked_scores)
        return out.astype(self.map.precision.reference_dtype, copy=False)


def file_values(array: np.ndarray, cls, path) -> np.ndarray:
    """A dump file's array as floats, if its dtype is one precision class `cls` allows (a uint16 file holds
    raw bfloat16 bits: they become float32 exactly); a DumpError naming the file otherwise."""
    name = "bfloat16" if array.dtype == np.dtype("<u2") else array.dtype.name
    if name not in cls.dump_dtypes:
        allowed = ", ".join("bfloat16 (raw bits in a uint16 file)" if d == "bfloat16" else d for d in cls.dump_dtypes)
        raise DumpError(f"dump file {path}: dtype {array.dtype.name}, the map declares precision {cls.name} (its files: {allowed})")
    if name == "bfloat16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def scaled_scores(scores: np.ndarray, head_dim: int, masked_scores) -> np.ndarray:
    """Unscaled attention scores (q.k) -> scaled by 1/sqrt(head_dim), the entries written as masked left as they
    are (-inf, the dtype's minimum, or at or below the declared threshold)."""
    threshold = masked_scores["at_or_below"] if isinstance(masked_scores, dict) else -np.inf
    real = np.isfinite(scores) & (scores != np.finfo(scores.dtype).min) & (scores > threshold)  # NaN compares False, silently
    return np.where(real, scores * scores.dtype.type(1 / math.sqrt(head_dim)), scores)


def to_canonical(array, spec: dict, kind: str, case, batch_layout: str, config, where: str, keys: int | None = None) -> np.ndarray:
    """A dumped array in the engine's layout -> gpt2core's layout for kind (the case's [B, T] left padding),
    with every size checked; `keys`: a decoding step's number of key positions (its queries are the case's T)."""
    import einops

    B, T = case.input_ids.shape
    layout, select = spec["layout"], spec["select"]
    target = target_layout(kind, layout)
    names = letters_of(layout)
    if "b" not in names:
        if B != 1 and batch_layout != "packed":
            raise DumpError(f"dump file {where}: layout {layout!r} has no batch axis, but the case has {B} rows")
        target = target.replace("b ", "")
    sizes = {"b": B, "h": config.n_head, "d": config.head_dim}
    if batch_layout == "left-padded":  # else the token axes are as long as the engine makes them, checked below
        sizes["t"] = T
        if not spec["key_window"]:
            sizes["s"] = T if keys is None else keys
    if kind != "logits":
        sizes["c"] = config.mlp_width if kind in ("mlp_fc", "mlp_act") else config.n_embd
    elif not spec["vocab_padded"]:
        sizes["v"] = config.vocab_size
    given = {k: v for k, v in sizes.items() if k in names}
    expected = " x ".join(f"{k}={v}" for k, v in given.items())
    try:
        out = einops.rearrange(array, f"{layout} -> {' '.join(select)} {target}".strip(), **given)
    except einops.EinopsError as e:
        raise DumpError(f"dump file {where}: shape {list(array.shape)} does not fit layout {layout!r} with {expected} "
                        f"({str(e).splitlines()[-1].strip()})") from None  # fmt: skip
    for axis, index in select.items():
        if not 0 <= index < out.shape[0]:
            raise DumpError(f"dump file {where}: select {axis}={index}, but the axis has {out.shape[0]} entries")
        out = out[index]
    if "b" not in names and batch_layout != "packed":
        out = out[None]
    if spec["vocab_padded"]:
        if out.shape[-1] < config.vocab_size:
            raise DumpError(f"dump file {where}: {out.shape[-1]} logits per position, fewer than the vocabulary's {config.vocab_size}")
        out = out[..., : config.vocab_size]
    if keys is not None:  # a decoding step: its keys are the first `keys` of the window
        if spec["key_window"]:
            axis = 2 if kind in ("k", "v") else 3
            if out.shape[axis] < keys:
                raise DumpError(f"dump file {where}: a key window of {out.shape[axis]} positions; the step needs {keys}")
            out = out[:, :, :keys] if axis == 2 else out[..., :keys]
        return np.ascontiguousarray(out)
    if batch_layout != "left-padded" or spec["key_window"]:
        out = to_left_padded(out, kind, token_mask(case), batch_layout, f"dump file {where}")  # a kind names its axes
    return np.ascontiguousarray(out)
