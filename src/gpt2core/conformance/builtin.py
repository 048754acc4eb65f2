"""The built-in models the parity tests run on, and their reference sets, each built once per machine.

  tiny     transformers' GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=128)), seed 0
  stress   the fault catalogue's stress model: sharp attention, random biases and LayerNorm, outlier channels
           (float64 only: float32's rounding of scores this sharp is as large as float32's tolerance)
  user     a model directory given with --gpt2core-model (a trained gpt2, for instance)

Reference sets are kept by gpt2core.verification.reference_cache (under a key hashing everything their files
depend on, so a stale set is never found; every load goes through load_references' checks). Directories are built
under a file lock (filelock), so pytest-xdist workers share them. A process running a mutmut mutant
(MUTANT_UNDER_TEST) never writes the shared cache: it builds a private set instead.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ReferencesError
from ..init_model import SHAPES
from ..verification.atomic import build_once
from ..verification.hf import save_transformers_model
from ..verification.reference_cache import cached_references, content_key, running_a_mutant  # noqa: F401 (re-exported)
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
        if user_model is None:
            raise ReferencesError("the built-in model 'user' needs --gpt2core-model DIR (a Hugging Face GPT-2 directory)")
        path = Path(user_model)
        if not (path / "config.json").is_file():
            raise ReferencesError(f"--gpt2core-model {path}: no config.json there (give a Hugging Face GPT-2 directory)")
        return path
    raise ValueError(f"no built-in model {name!r}")
