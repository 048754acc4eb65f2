"""Engines in any language: checkpoint dumps (.npy files) read through a declared map, as a subject.

An engine runs the cases of a reference set (each case's `input_ids.npy`, `attention_mask.npy` and
`position_ids.npy`, int64 [B, T]) and writes its checkpoints as .npy files in its own layout. A map (JSON)
declares that layout, so the engine never rewrites its tensors into gpt2core's:

{
  "format": "gpt2core-map/1",
  "engine": "my-engine",                 the name reports give it
  "dtype": "float32",                    what it computes in: float32 or float64 (compared with references
                                         of that dtype), float16 or bfloat16 (its dumps upcast to float32
                                         and compared with float32 references at LOW_PRECISION_TOL)
  "runs": {"batch": false, "padding": false},
                                         cases it cannot run (several rows; left padding) are "not run"
  "single_row_without_batch": true,      a case of one row is written without the layout's b axis
  "masked_scores": "-inf",               how masked attention scores are written: "min" (the dtype's
                                         minimum, as transformers), "-inf", or "not computed" (ignored)
  "checkpoints": {                       only what the engine provides; the rest is "not provided"
    "embeddings": {"file": "{case}/embeddings.npy", "layout": "t c"},
    "h{i}.q": {"file": "{case}/h{i}.qkv.npy", "layout": "t (three h d)", "select": {"three": 0}},
    "logits": {"file": "{case}/logits.npy", "layout": "t v", "vocab_padded": true}
  }
}

`file` is a path under the dump directory with `{case}` and `{i}` (the layer) filled in (default
"{case}/{name}.npy"); `layout` is an einops pattern of the dump's axes (default: gpt2core's own), with
b batch, t position (queries), s key position, h head, d head size, c channel (C, or 4C in the MLP),
v vocabulary, and any name of the map's own for a fused axis taken apart with `select` (q, k and v from
one [T, 3C] tensor: "t (three h d)" with three = 0, 1, 2). A layout without b is allowed for cases of
one row. `vocab_padded`: the last axis is at least the vocabulary and sliced to it. Dumps are never
unpickled; a missing, unreadable, truncated, object-typed or wrongly shaped file is a DumpError naming
the file and what was expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import DumpError
from .subject import LAYER_CHECKPOINTS, MODEL_CHECKPOINTS, kind_of

FORMAT = "gpt2core-map/1"
DTYPES = ("float32", "float64", "float16", "bfloat16")
MASKED_SCORES = ("min", "-inf", "not computed")
LETTERS = {"batch": "b", "head": "h", "position": "t", "query": "t", "key": "s", "dim": "d", "channel": "c",
           "token": "v"}  # fmt: skip
SPEC_KEYS = {"file", "layout", "select", "vocab_padded"}


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


class DumpMap:
    """A parsed, checked map file (see the module docstring)."""

    def __init__(self, data, source: str = "map"):
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DumpError(f"{source}: format {found!r}, expected {FORMAT!r}")
        self.engine = str(data.get("engine", "engine"))
        self.dtype = data.get("dtype", "float32")
        if self.dtype not in DTYPES:
            raise DumpError(f"{source}: dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        runs = data.get("runs", {})
        if not isinstance(runs, dict) or set(runs) - {"batch", "padding"} or not all(isinstance(v, bool) for v in runs.values()):
            raise DumpError(f"{source}: runs must be an object of booleans 'batch' and 'padding', got {runs!r}")
        self.runs_batch, self.runs_padding = runs.get("batch", True), runs.get("padding", True)
        self.single_row_without_batch = data.get("single_row_without_batch", False)
        if type(self.single_row_without_batch) is not bool:
            raise DumpError(f"{source}: single_row_without_batch must be true or false")
        self.masked_scores = data.get("masked_scores", "min")
        if self.masked_scores not in MASKED_SCORES:
            raise DumpError(f"{source}: masked_scores {self.masked_scores!r}; expected one of {', '.join(MASKED_SCORES)}")
        specs = data.get("checkpoints")
        if not isinstance(specs, dict) or "logits" not in specs:
            raise DumpError(f"{source}: 'checkpoints' must be an object that provides at least 'logits'")
        self.specs = {}
        for name, spec in specs.items():
            kind = kind_of(name)
            templated = name.startswith("h{i}.") and kind in LAYER_CHECKPOINTS
            if not (templated or name in MODEL_CHECKPOINTS):
                raise DumpError(f"{source}: unknown checkpoint {name!r}; per-layer ones are written 'h{{i}}.<kind>' "
                                f"with kind one of {', '.join(LAYER_CHECKPOINTS)}, the others {', '.join(MODEL_CHECKPOINTS)}")  # fmt: skip
            spec = {} if spec is None else spec
            if not isinstance(spec, dict) or set(spec) - SPEC_KEYS:
                raise DumpError(f"{source}: checkpoint {name!r}: expected an object with keys among {sorted(SPEC_KEYS)}, got {spec!r}")
            self.specs[name] = self._checked(name, kind, spec, source)

    @staticmethod
    def _checked(name, kind, spec, source) -> dict:
        file = spec.get("file", "{case}/" + name + ".npy")
        if not isinstance(file, str) or ".." in Path(file).parts or Path(file).is_absolute() or "{case}" not in file:
            raise DumpError(f"{source}: checkpoint {name!r}: file {file!r} must be a relative path holding {{case}}")
        if name.startswith("h{i}.") and "{i}" not in file:
            raise DumpError(f"{source}: checkpoint {name!r}: file {file!r} must hold {{i}}, the layer")
        layout = spec.get("layout", canonical_layout(kind))
        select = spec.get("select", {})
        if not isinstance(layout, str) or not isinstance(select, dict) or not all(type(v) is int for v in select.values()):
            raise DumpError(f"{source}: checkpoint {name!r}: layout must be an einops pattern and select an object of integers")
        wanted = set(target_layout(kind, layout).split())
        have = set(letters_of(layout))
        extra = have - wanted - set(select)
        if wanted - have - {"b"} or extra:
            raise DumpError(f"{source}: checkpoint {name!r}: layout {layout!r} must name the axes "
                            f"{target_layout(kind, layout)!r} (b may be left out) and select each other axis; "
                            f"missing {sorted(wanted - have - {'b'})}, not selected {sorted(extra)}")  # fmt: skip
        padded = spec.get("vocab_padded", False)
        if type(padded) is not bool or (padded and kind != "logits"):
            raise DumpError(f"{source}: checkpoint {name!r}: vocab_padded is a boolean, for logits only")
        return {"file": file, "layout": layout, "select": select, "vocab_padded": padded}

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

    def provides(self, n_layer: int) -> list[str]:
        """The checkpoint names this map provides for an n_layer model."""
        out = []
        for name in self.specs:
            out += [name.replace("{i}", str(i)) for i in range(n_layer)] if "{i}" in name else [name]
        return out


def read_npy(path: Path) -> np.ndarray:
    """A dump file as an array: never unpickled, and every way it can be broken named."""
    if not path.is_file():
        raise DumpError(f"dump file {path} is missing")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DumpError(f"dump file {path} is not a readable .npy file ({e})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise DumpError(f"dump file {path}: dtype {getattr(array, 'dtype', type(array).__name__)}, expected floats")
    return array


class LazyCheckpoints(Mapping):
    """name -> array, read from the dump on lookup."""

    def __init__(self, subject, case):
        self.subject, self.case = subject, case

    def __getitem__(self, name):
        if name not in self.subject.provides:
            raise KeyError(name)
        return self.subject.checkpoint(self.case, name)

    def __contains__(self, name):  # without reading the file (Mapping's default would)
        return name in self.subject.provides

    def __iter__(self):
        return iter(sorted(self.subject.provides))

    def __len__(self):
        return len(self.subject.provides)


class DumpSubject:
    """The subject protocol over a directory of dumps and its map: chained mode only (a dump is one full
    forward pass per case)."""

    capabilities = frozenset()

    def __init__(self, dumps_dir, dump_map: DumpMap, config):
        self.root, self.map, self.config = Path(dumps_dir), dump_map, config
        self.name = dump_map.engine
        self.masked_scores = dump_map.masked_scores
        self.precision = dump_map.dtype
        self.provides = frozenset(dump_map.provides(config.n_layer))

    def can_run(self, case) -> str | None:
        """Why the engine cannot run the case (None: it can)."""
        B = case.input_ids.shape[0]
        if B > 1 and not self.map.runs_batch:
            return f"{B} rows, and the engine runs one row at a time"
        if case.attention_mask is not None and not case.attention_mask.all() and not self.map.runs_padding:
            return "left padding, and the engine takes no attention mask"
        return None

    def checkpoints(self, case) -> Mapping[str, np.ndarray]:
        """The provided checkpoints of the case, each read when it is looked up (a broken file raises
        DumpError for that checkpoint alone)."""
        return LazyCheckpoints(self, case)

    def checkpoint(self, case, name: str) -> np.ndarray:
        """One checkpoint of the case, read from its dump and brought into gpt2core's layout and dtype."""
        kind = kind_of(name)
        template = name if kind in MODEL_CHECKPOINTS else "h{i}." + kind
        spec = self.map.specs[template]
        layer = name.split(".")[0][1:] if kind in LAYER_CHECKPOINTS else ""
        path = self.root / spec["file"].replace("{case}", case.name).replace("{i}", layer)
        array = read_npy(path)
        B, T = case.input_ids.shape
        cfg = self.config
        expected_dtype = {"float16": "float16", "bfloat16": "float32"}.get(self.precision, self.precision)
        if array.dtype.name != expected_dtype:
            raise DumpError(f"dump file {path}: dtype {array.dtype.name}, the map declares {self.precision} "
                            f"(expected {expected_dtype} files)")  # fmt: skip
        if B == 1 and self.map.single_row_without_batch and "b" in letters_of(spec["layout"]):
            spec = dict(spec, layout=" ".join(re.sub(r"\bb\b", " ", spec["layout"]).split()))
        return to_canonical(array, spec, kind, B, T, cfg, str(path)).astype(
            np.float32 if self.precision in ("float16", "bfloat16") else array.dtype, copy=False
        )


def to_canonical(array, spec: dict, kind: str, B: int, T: int, config, where: str) -> np.ndarray:
    """A dumped array in the engine's layout -> gpt2core's layout for kind, with every size checked."""
    import einops

    layout, select = spec["layout"], spec["select"]
    target = target_layout(kind, layout)
    if "b" not in letters_of(layout):
        if B != 1:
            raise DumpError(f"dump file {where}: layout {layout!r} has no batch axis, but the case has {B} rows")
        target = target.replace("b ", "")
    sizes = {"b": B, "t": T, "s": T, "h": config.n_head, "d": config.head_dim}
    if kind != "logits":
        sizes["c"] = config.mlp_width if kind in ("mlp_fc", "mlp_act") else config.n_embd
    elif not spec["vocab_padded"]:
        sizes["v"] = config.vocab_size
    names = letters_of(layout)
    given = {k: v for k, v in sizes.items() if k in names}
    expected = " x ".join(f"{k}={v}" for k, v in given.items())
    try:
        out = einops.rearrange(array, f"{layout} -> {' '.join(select)} {target}".strip(), **given)
    except einops.EinopsError as e:
        raise DumpError(f"dump file {where}: shape {list(array.shape)} does not fit layout {layout!r} with {expected} "
                        f"({str(e).splitlines()[-1]})") from None  # fmt: skip
    for axis, index in select.items():
        if not 0 <= index < out.shape[0]:
            raise DumpError(f"dump file {where}: select {axis}={index}, but the axis has {out.shape[0]} entries")
        out = out[index]
    if "b" not in letters_of(layout):
        out = out[None]
    if spec["vocab_padded"]:
        if out.shape[-1] < config.vocab_size:
            raise DumpError(f"dump file {where}: {out.shape[-1]} logits per position, fewer than the vocabulary's {config.vocab_size}")
        out = out[..., : config.vocab_size]
    return np.ascontiguousarray(out)
