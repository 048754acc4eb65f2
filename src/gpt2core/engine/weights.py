"""Reading GPT-2 weights from Hugging Face safetensors files into `GPT2Params`, with every check named.

Never unpickles: `pytorch_model.bin` checkpoints are refused with the command that converts them.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from safetensors import safe_open

from .config import GPT2Config
from .errors import CheckpointError
from .params import BlockParams, GPT2Params, LayerNormParams, LinearParams

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
CONVERT_HINT = (
    "convert it once with transformers: python -c \"from transformers import GPT2LMHeadModel as M; "
    "M.from_pretrained('{d}').save_pretrained('{d}')\" (this writes model.safetensors)"
)
# Buffers older checkpoints carry (the causal-mask triangle); they are not weights and are ignored.
IGNORED_KEY = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
# The blocks' Conv1D matrices, stored [in, out]; decoding reads each output's column (see LinearParams).
CONV1D_WEIGHT = re.compile(r"^h\.\d+\.(attn|mlp)\.c_(attn|proj|fc)\.weight$")
FLOAT_DTYPES = {"F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8")}  # safetensors is little-endian


def expected_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """Tensor name (without the `transformer.` prefix) -> shape, for every weight GPT-2 needs."""
    C, V, P, F = config.n_embd, config.vocab_size, config.n_positions, config.mlp_width
    shapes = {"wte.weight": (V, C), "wpe.weight": (P, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for i in range(config.n_layer):
        shapes.update({
            f"h.{i}.ln_1.weight": (C,), f"h.{i}.ln_1.bias": (C,),
            f"h.{i}.attn.c_attn.weight": (C, 3 * C), f"h.{i}.attn.c_attn.bias": (3 * C,),
            f"h.{i}.attn.c_proj.weight": (C, C), f"h.{i}.attn.c_proj.bias": (C,),
            f"h.{i}.ln_2.weight": (C,), f"h.{i}.ln_2.bias": (C,),
            f"h.{i}.mlp.c_fc.weight": (C, F), f"h.{i}.mlp.c_fc.bias": (F,),
            f"h.{i}.mlp.c_proj.weight": (F, C), f"h.{i}.mlp.c_proj.bias": (C,),
        })  # fmt: skip
    return shapes


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors file(s) of a model directory; refuses pickle-based checkpoints."""
    single, index = model_dir / WEIGHTS_FILE, model_dir / WEIGHTS_INDEX_FILE
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            weight_map = json.loads(index.read_bytes())["weight_map"]  # bytes: json detects UTF-8/16/32
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{index}: malformed safetensors index ({e!r})") from None
        for shard in shards:
            if not isinstance(shard, str) or "/" in shard or "\\" in shard or not (model_dir / shard).is_file():
                raise CheckpointError(f"{index}: shard {shard!r} is not a file in {model_dir}")
        return [model_dir / s for s in shards]
    pickled = [name for name in PICKLE_FILES if (model_dir / name).is_file()]
    if pickled:
        raise CheckpointError(
            f"{model_dir} has only {pickled[0]}, which gpt2core never loads (unpickling runs arbitrary code); "
            + CONVERT_HINT.format(d=model_dir)
        )
    raise CheckpointError(f"{model_dir}: weights file {WEIGHTS_FILE} not found")


def copy_of(name: str, mapped: np.ndarray) -> np.ndarray:
    """The default for `read_tensors`: a plain in-memory copy of a tensor's mapped bytes."""
    return np.array(mapped)


def read_tensors(path: Path, copy=copy_of) -> dict[str, np.ndarray]:
    """All tensors of one safetensors file as NumPy arrays; malformed files raise CheckpointError.

    safetensors validates the file (header, dtypes, shapes, offsets); each tensor's bytes are then mapped
    read-only and handed to `copy(name, mapped)`, which copies it into memory the caller owns (never a view of
    the mapping), in the dtype and layout it wants. The mapping closes before the next tensor is read, so
    loading holds the weights once plus one tensor's pages, and that copy is the only one made.
    """
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, the header length alone is 8)")
    try:
        with safe_open(str(path), framework="np") as f:  # validates the header: dtypes, shapes, offsets
            names = list(f.keys())
        with open(path, "rb") as file:  # the header safetensors has just validated: its length, then JSON
            header_len = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(header_len))
        for name in names:
            if header[name]["dtype"] not in FLOAT_DTYPES:
                raise CheckpointError(
                    f"{path}: tensor {name!r} has dtype {header[name]['dtype']}; expected a float type ({', '.join(sorted(FLOAT_DTYPES))})"
                )
        tensors = {}
        for name in names:
            dtype, shape = FLOAT_DTYPES[header[name]["dtype"]], tuple(header[name]["shape"])
            start = 8 + header_len + header[name]["data_offsets"][0]
            if math.prod(shape) == 0:  # nothing to map (mmap refuses empty ranges)
                tensors[name] = copy(name, np.zeros(shape, dtype))
                continue
            mapped = np.memmap(path, dtype=dtype, mode="r", offset=start, shape=shape)
            tensors[name] = copy(name, mapped)
            del mapped  # unmaps the tensor's pages
        return tensors
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises its own SafetensorError, OSError or ValueError on bad files
        raise CheckpointError(f"{path}: not a valid safetensors file ({type(e).__name__}: {e})") from None


def strip_prefix(tensors: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Accept keys with or without `transformer.` (GPT2LMHeadModel vs GPT2Model checkpoints)."""
    out: dict[str, np.ndarray] = {}
    for name, array in tensors.items():
        key = name.removeprefix("transformer.")
        if key in out:
            raise CheckpointError(f"{source}: tensor {key!r} appears both with and without the 'transformer.' prefix")
        out[key] = array
    return out


def params_from_tensors(
    tensors: dict[str, np.ndarray], config: GPT2Config, dtype: np.dtype, source: str
) -> GPT2Params:
    """Check names, shapes and finiteness against `config`, convert to `dtype`, and group the arrays."""
    tensors = {k: v for k, v in strip_prefix(tensors, source).items() if not IGNORED_KEY.match(k)}
    shapes = expected_shapes(config)
    missing = [k for k in shapes if k not in tensors]
    if missing:
        raise CheckpointError(f"{source}: missing tensor(s) {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    unexpected = [k for k in tensors if k not in shapes and k != "lm_head.weight"]
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor(s) {', '.join(sorted(unexpected)[:5])}")
    shapes["lm_head.weight"] = shapes["wte.weight"]
    for name, array in tensors.items():
        if array.shape != shapes[name]:
            raise CheckpointError(
                f"{source}: tensor {name!r} has shape {list(array.shape)}, config.json implies {list(shapes[name])}"
            )
        if not np.isfinite(array).all():
            n_bad = int(np.size(array) - np.isfinite(array).sum())
            raise CheckpointError(f"{source}: tensor {name!r} contains {n_bad} NaN or Inf value(s)")

    def get(name: str) -> np.ndarray:
        return np.asarray(tensors[name], dtype=dtype, order=weight_order(name))  # ty: ignore[no-matching-overload] ("C" or "F")

    def ln(prefix: str) -> LayerNormParams:
        return LayerNormParams(get(f"{prefix}.weight"), get(f"{prefix}.bias"))

    def lin(prefix: str) -> LinearParams:
        return LinearParams(get(f"{prefix}.weight"), get(f"{prefix}.bias"))

    wte = get("wte.weight")
    if "lm_head.weight" not in tensors or config.tie_word_embeddings:
        if "lm_head.weight" in tensors and not np.array_equal(tensors["lm_head.weight"], tensors["wte.weight"]):
            raise CheckpointError(
                f"{source}: lm_head.weight differs from wte.weight but config.json ties them (tie_word_embeddings)"
            )
        lm_head = wte
    else:
        lm_head = get("lm_head.weight")
    blocks = tuple(
        BlockParams(
            ln_1=ln(f"h.{i}.ln_1"),
            c_attn=lin(f"h.{i}.attn.c_attn"),
            attn_proj=lin(f"h.{i}.attn.c_proj"),
            ln_2=ln(f"h.{i}.ln_2"),
            c_fc=lin(f"h.{i}.mlp.c_fc"),
            mlp_proj=lin(f"h.{i}.mlp.c_proj"),
        )
        for i in range(config.n_layer)
    )
    return GPT2Params(wte=wte, wpe=get("wpe.weight"), blocks=blocks, ln_f=ln("ln_f"), lm_head=lm_head)


def weight_order(name: str) -> str:
    """Memory layout of a weight in gpt2core: "F" (column-major) for the blocks' Conv1D matrices, else "C"."""
    return "F" if CONV1D_WEIGHT.match(name) else "C"


TRANSPOSE_ROWS = 32  # a [768, 3072] float32 matrix into column-major: 1.8 ms in bands of 16-64 rows, 15 ms at once


def copy_into(out: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Copy `source` into `out` (same shape), converting to out's dtype and layout; returns `out`. A row-major
    matrix goes into a column-major one TRANSPOSE_ROWS rows at a time, so that each band is read from cache
    while its columns are written."""
    if out.ndim == 2 and not out.flags.c_contiguous:
        for r in range(0, source.shape[0], TRANSPOSE_ROWS):
            out[r : r + TRANSPOSE_ROWS] = source[r : r + TRANSPOSE_ROWS]
    else:
        out[...] = source
    return out


HUGE_PAGE = 1 << 21  # bytes: the x86-64 transparent huge page the weights start on
SLOT_ALIGNMENT = 64  # bytes: each weight starts on a cache line


def weight_arena(shapes: dict[str, tuple[int, ...]], dtype: np.dtype) -> dict[str, np.ndarray]:
    """Uninitialised arrays of the given shapes, each in `weight_order(name)`, packed one after another into
    a single buffer that starts on a huge-page boundary.

    NumPy asks the kernel for huge pages only for allocations of 4 MiB or more, from wherever malloc puts
    them: the 124M shape's [C, C] matrices (2.4 MB) got none, and each larger one only its aligned middle.
    Decoding reads every weight once per token, and the extra TLB misses cost it (2 threads, alternated):
    48 matrix-vector products over matrices of the blocks' shapes took 12.1-12.6 ms in separate arrays and
    11.5-11.8 ms in one such buffer; a decoded token of the 124M model, 0.53-0.62 ms less.
    """
    itemsize = np.dtype(dtype).itemsize
    sizes = {name: math.prod(shape) * itemsize for name, shape in shapes.items()}
    offsets, end = {}, 0
    for name, size in sizes.items():
        offsets[name] = end
        end += -(-size // SLOT_ALIGNMENT) * SLOT_ALIGNMENT  # up to the next cache line
    buffer = np.empty(end + HUGE_PAGE, dtype=np.uint8)  # a huge page of slack to align the start
    start = -buffer.ctypes.data % HUGE_PAGE
    return {
        name: buffer[start + offsets[name] : start + offsets[name] + sizes[name]]  # ty: ignore[no-matching-overload] ("C" or "F")
        .view(dtype)
        .reshape(shape, order=weight_order(name))
        for name, shape in shapes.items()
    }


def load_params(model_dir: Path, config: GPT2Config, dtype: np.dtype) -> GPT2Params:
    """The weights of `model_dir`, each copied once from the file into its slot of one `weight_arena`."""
    shapes = expected_shapes(config)
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = shapes["wte.weight"]
    slots = weight_arena(shapes, dtype)

    def copy(name: str, mapped: np.ndarray) -> np.ndarray:  # straight into the engine's dtype and layout
        key = name.removeprefix("transformer.")
        slot = slots.pop(key, None)
        if slot is None or slot.shape != mapped.shape:  # never a weight of the model: an unexpected name or shape,
            return np.array(mapped, dtype=dtype)  # which params_from_tensors reports, or a tied head's duplicate
        return copy_into(slot, mapped)

    tensors: dict[str, np.ndarray] = {}
    files = weight_files(model_dir)
    for path in files:
        tensors.update(read_tensors(path, copy))
    return params_from_tensors(tensors, config, np.dtype(dtype), source=str(files[0] if len(files) == 1 else model_dir))
