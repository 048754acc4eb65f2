"""Running transformers: its GPT2LMHeadModel loaded for a model directory, and saving one as a directory.

Needs torch and transformers (`pip install "gpt2core[test]"`); nothing else in gpt2core imports them at
module level.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..engine.config import published_config
from ..engine.tokenizer import MERGES_FILE, VOCAB_FILE, gpt2_vocab_files
from ..engine.weights import WEIGHTS_INDEX_FILE, weight_files
from .atomic import atomic_directory
from .errors import ReferencesError
from .memory import give_back_freed_memory

_hf_models: dict = {}


def require_transformers():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import transformers.models.gpt2.modeling_gpt2  # noqa: F401  (0.11 GB: imported before a run measures its memory)
    except ImportError as e:
        raise ReferencesError(
            f"building references needs torch and transformers ({e}); install them with "
            "pip install \"gpt2core[test]\", or pass a reference directory made elsewhere"
        ) from None


def torch_dtype(dtype):
    """The torch dtype of numpy float32 or float64."""
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[np.dtype(dtype).name]


def hf_model(model_dir, dtype):
    """transformers' GPT2LMHeadModel for model_dir in eval mode with eager attention, loaded once per process
    (until `release_hf_models`).

    transformers maps a safetensors file whose dtype is the one asked for, and reads its pages as the forward
    pass needs them; asked for float64 from a float32 file it converts the tensors while the whole file stays
    mapped (355M shape: a peak of 4.5 GB for 2.8 GB of float64 weights). So for float64 it loads an exact
    float64 copy of the weights (`float64_copy`), which it maps: the peak is the weights once."""
    require_transformers()
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Loading weights" bar in reports
    key = (str(Path(str(model_dir)).resolve()), np.dtype(dtype).name)
    if key not in _hf_models:
        convert = np.dtype(dtype) == np.float64 and not stored_in_float64(model_dir)
        copy = float64_copy(model_dir) if convert else contextlib.nullcontext(model_dir)
        with copy as path:  # the copy's files may go once loaded: their mappings stay valid until released
            model = GPT2LMHeadModel.from_pretrained(str(path), attn_implementation="eager", dtype=torch_dtype(dtype))
        _hf_models[key] = model.eval()
    return _hf_models[key]


def forget_hf_model(model_dir) -> None:
    """Drop the models hf_model loaded from model_dir (no garbage collection: 0.2 s in a process holding torch,
    which a drawn example of the conformance suite would pay each time)."""
    path = str(Path(str(model_dir)).resolve())
    for key in [k for k in _hf_models if k[0] == path]:
        del _hf_models[key]


# Below this many bytes of parameters, released models are left to Python's own collection: the explicit one costs
# 0.2-0.5 s in a process holding torch, and the memory it would give back is far inside the memory plan's 0.6 GB
# allowance for the interpreter (verification.memory). Measured: a float32 drawn example of the conformance suite
# (writing its float32 budgets releases models twice) spent 9.7 of 28 s in gc.collect over 20 examples.
COLLECT_FROM_BYTES = 64 * 2**20


def release_hf_models() -> None:
    """Drop every model hf_model loaded, so that its memory is free before the engine is loaded; with none loaded
    (references read from the cache) nothing to do. Models of COLLECT_FROM_BYTES of parameters or more are collected
    and their heap pages given back at once."""
    if _hf_models:
        held = sum(p.numel() * p.element_size() for model in _hf_models.values() for p in model.parameters())
        _hf_models.clear()
        if held >= COLLECT_FROM_BYTES:
            give_back_freed_memory()


def stored_in_float64(model_dir) -> bool:
    """Whether every floating-point tensor of model_dir's weight files is stored in float64 already."""
    from safetensors import safe_open

    for source in weight_files(Path(str(model_dir))):
        with safe_open(str(source), framework="np") as f:
            if {f.get_slice(name).get_dtype() for name in f.keys()} & {"F16", "BF16", "F32"}:
                return False
    return True


SHARD_BYTES = 256 * 2**20  # float64 copy: tensors are converted and written a shard of about this size at a time


@contextlib.contextmanager
def float64_copy(model_dir):
    """A temporary model directory with model_dir's files and its weights converted exactly to float64, in
    shards (model.safetensors.index.json) written SHARD_BYTES at a time; yields its path, removed on exit.
    The tensor names are kept, so transformers maps them to its modules exactly as it does model_dir's."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    model_dir = Path(str(model_dir))
    sources = weight_files(model_dir)
    with tempfile.TemporaryDirectory(prefix="gpt2core-float64-") as tmp:
        out = Path(tmp)
        for f in model_dir.iterdir():
            if f.is_file() and f not in sources and f.name != WEIGHTS_INDEX_FILE:
                shutil.copyfile(f, out / f.name)
        weight_map, shard, size, total = {}, {}, 0, 0

        def write_shard():
            name = f"model-f64-{len(set(weight_map.values())):05d}.safetensors"
            save_file(shard, str(out / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, name))
            shard.clear()

        for source in sources:
            with safe_open(str(source), framework="np") as f:
                for name in f.keys():
                    array = f.get_tensor(name)
                    shard[name] = array.astype(np.float64) if array.dtype.kind == "f" else array
                    size += shard[name].nbytes
                    total += shard[name].nbytes
                    if size >= SHARD_BYTES:
                        write_shard()
                        size = 0
        if shard:
            write_shard()
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / WEIGHTS_INDEX_FILE).write_text(json.dumps(index))
        yield out


def save_transformers_model(model, out_dir) -> Path:
    """`model.save_pretrained` plus GPT-2's real vocabulary, into out_dir (new or empty), moved into place last;
    config.json completed with GPT-2's published fields (n_ctx among them), as the ecosystem's converters expect."""
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp)
        config = json.loads((tmp / "config.json").read_text())
        (tmp / "config.json").write_text(json.dumps(published_config(config), indent=2, sort_keys=True) + "\n")
        encoder, bpe = gpt2_vocab_files()
        shutil.copyfile(encoder, tmp / VOCAB_FILE)
        shutil.copyfile(bpe, tmp / MERGES_FILE)
    return Path(out_dir)
