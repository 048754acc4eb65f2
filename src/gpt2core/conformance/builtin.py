"""The built-in models the parity tests run on, and their reference sets, each built once per machine.

  tiny     transformers' GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=128)), seed 0
  stress   the fault catalogue's stress model: sharp attention, random biases and LayerNorm, outlier channels
           (float64 only: float32's rounding of scores this sharp is as large as float32's tolerance)
  user     a model directory given with --gpt2core-model (a trained gpt2, for instance)

Reference sets are kept under a key hashing everything their files depend on (the weights' sha256, the dtype,
the cases, the torch, transformers and numpy versions, torch's thread count, the CPU and the capture code), so
a stale set is never found; every load goes through load_references' checks. Directories are built under a
file lock (filelock), so pytest-xdist workers share them. A process running a mutmut mutant
(MUTANT_UNDER_TEST) never writes the shared cache: it builds a private set instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import ReferencesError
from ..init_model import SHAPES
from ..verification import capture as capture_module
from ..verification import reference_set as reference_set_module
from ..verification.atomic import build_once
from ..verification.hf import save_transformers_model
from ..verification.model_dir import read_model_dir
from ..verification.reference_set import MANIFEST, load_references, versions, write_references
from ..verification.stress import stress_model_dir


def transformers_model_dir(cache: Path, shape: str = "tiny", seed: int = 0) -> Path:
    """A GPT-2 of `shape` (gpt2core.init_model.SHAPES) initialised by transformers with torch.manual_seed(seed)
    and written with save_pretrained, plus GPT-2's real vocabulary; built once in `cache`."""
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    def build(path):
        cfg = SHAPES[shape]
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(GPT2Config(n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head, n_positions=cfg.n_positions))
        save_transformers_model(model, path)

    path = Path(cache) / f"hf-{shape}-seed{seed}-tf{transformers.__version__}"
    return build_once(path, lambda p: (p / "model.safetensors").is_file(), build)


def builtin_model_dir(name: str, cache: Path, user_model: str | None = None) -> Path:
    """The directory of built-in model `name` (tiny, stress, user)."""
    if name == "tiny":
        return transformers_model_dir(cache, "tiny")
    if name == "stress":
        return stress_model_dir(cache)
    if name == "user":
        path = Path(user_model)
        if not (path / "config.json").is_file():
            raise ReferencesError(f"--gpt2core-model {path}: no config.json there (give a Hugging Face GPT-2 directory)")
        return path
    raise ValueError(f"no built-in model {name!r}")


def running_a_mutant() -> bool:
    """True inside mutmut's run of one mutant (or its forced-failure check): such a process writes no cache."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return "__mutmut_" in name or name == "fail"


def content_key(model_dir: Path, dtype, cases) -> str:
    """sha256 of everything a reference set's files depend on."""
    import torch

    from ..bench import cpu_name

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


def cached_references(cache: Path, model_dir: Path, dtype, cases, private_dir=None):
    """The reference set of `cases` on model_dir in dtype, from cache/references (built once there under a file lock);
    `private_dir()` gives a fresh directory for a mutmut mutant's own set."""
    model_dir = Path(model_dir)
    name = f"{model_dir.name}-{np.dtype(dtype).name}-{content_key(model_dir, dtype, cases)}"
    final = Path(cache) / "references" / name
    if running_a_mutant():
        if (final / MANIFEST).is_file():
            return load_references(final, model_dir)
        out = Path(private_dir()) / name
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
