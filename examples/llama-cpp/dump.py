"""llama.cpp as an engine verified through dumps: a GGUF GPT-2 run by llama-cpp-python's low-level API, every
tensor of llama.cpp's GPT-2 graph read through the scheduler's eval callback (cb_eval) and written as it is.

    python dump.py MODEL REFERENCES_DIR DUMPS_DIR [--type f32|f16|q8_0|q4_0|...] [--kv-cache f32|f16] [--threads N]

    gpt2core verify --model DIR --dtype float32 --map map-f32.json \
        --subject-cmd "python dump.py {model} {references} {dumps} --type f32 --kv-cache f32"

MODEL is a GGUF file, or a model directory converted once per `--type` by convert.py (kept in
$GPT2CORE_HOME/llama.cpp/).

No llama.cpp tokenizer: each case of the reference set (cases.txt; <case>/input_ids.npy, attention_mask.npy,
position_ids.npy) is decoded as one llama_batch of all its rows, packed as llama.cpp packs them (row b's
tokens one after another, sequence id b, the reference's positions), into an emptied, unified KV cache with
flash attention off. Each tensor is written to DUMPS_DIR/<case>/<llama.cpp's name>.npy in llama.cpp's layout
(its ggml shape reversed, float32): per token [N, C] for N packed tokens, attention [H, N, n_kv] over the
KV-cache window. The maps beside this file declare that layout (batch_layout "packed", key_window, the
unscaled `kq`), one per precision class.

Tensors, by llama.cpp's names (src/models/gpt2.cpp, src/llama-graph.cpp): inpL (embeddings), attn_norm-i,
wqkv_b-i (q|k|v), kq-i (q.k before the scale; ggml masks inside the softmax, so kq holds values at masked
entries), kq_soft_max-i, kqv_out-i (heads merged), ffn_inp-i, ffn_norm-i, ffn_up_b-i, ffn_gelu-i, ffn_out-i,
l_out-i, result_norm, result_output (logits). llama.cpp leaves the attention output projection's result
unnamed: this driver finds it as the node that adds blk.i.attn_output.bias and writes it as attn_out-i.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import sys
from pathlib import Path

import numpy as np

LLAMA_CPP_PYTHON = "0.3.36"  # the ggml_tensor struct below is this release's ggml.h
GGML_TYPE_F32, GGML_TYPE_F16 = 0, 1
PER_LAYER = ("attn_norm", "wqkv_b", "kq", "kq_soft_max", "kqv_out", "attn_out", "ffn_inp", "ffn_norm", "ffn_up_b",
             "ffn_gelu", "ffn_out", "l_out")  # fmt: skip
ATTENTION = ("kq", "kq_soft_max")  # [H, N, n_kv]; every other tensor is [N, C]
MODEL = ("inpL", "result_norm", "result_output")
ATTN_OUT_BIAS = re.compile(r"blk\.(\d+)\.attn_output\.bias")


class GGMLTensor(ctypes.Structure):
    """struct ggml_tensor (ggml/include/ggml.h of llama-cpp-python 0.3.36's llama.cpp)."""


GGMLTensor._fields_ = [
    ("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4), ("nb", ctypes.c_size_t * 4),
    ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16), ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(GGMLTensor) * 10), ("view_src", ctypes.POINTER(GGMLTensor)), ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64), ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8),
]  # fmt: skip


def ggml_library():
    """libggml-base from llama-cpp-python's package, with the three functions the callback uses."""
    import llama_cpp

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    lib.ggml_backend_tensor_get.restype = None
    lib.ggml_is_contiguous.argtypes = [ctypes.c_void_p]
    lib.ggml_is_contiguous.restype = ctypes.c_bool
    lib.ggml_op_name.argtypes = [ctypes.c_int]
    lib.ggml_op_name.restype = ctypes.c_char_p
    lib.ggml_tensor_overhead.restype = ctypes.c_size_t
    return lib


class Recorder:
    """The eval callback: asks for every tensor this driver dumps and copies each one out when computed."""

    def __init__(self, lib, n_layer: int):
        self.lib, self.tensors = lib, {}
        self.wanted = set(MODEL) | {f"{kind}-{i}" for kind in PER_LAYER for i in range(n_layer)}

    def name_of(self, t: GGMLTensor) -> str | None:
        """The dump name of node t, or None if it is not dumped."""
        name = t.name.decode(errors="replace")
        if name in self.wanted:
            return name
        if self.lib.ggml_op_name(t.op) == b"ADD" and t.src[1]:
            bias = ATTN_OUT_BIAS.fullmatch(t.src[1].contents.name.decode(errors="replace"))
            if bias:
                return f"attn_out-{bias.group(1)}"
        return None

    def __call__(self, pointer, ask: bool, user_data) -> bool:
        t = ctypes.cast(pointer, ctypes.POINTER(GGMLTensor)).contents
        name = self.name_of(t)
        if ask or name is None:
            return name is not None
        if t.type != GGML_TYPE_F32 or not self.lib.ggml_is_contiguous(pointer):
            raise RuntimeError(f"{name}: expected a contiguous float32 tensor (ggml type {t.type})")
        rank = 3 if name.split("-")[0] in ATTENTION else 2
        ne = list(t.ne)
        if any(n != 1 for n in ne[rank:]):
            raise RuntimeError(f"{name}: ggml shape {ne}, expected {rank} axes")
        out = np.empty(ne[:rank][::-1], dtype=np.float32)
        self.lib.ggml_backend_tensor_get(pointer, out.ctypes.data, 0, out.nbytes)
        self.tensors[name] = out
        return True


def read_case(root: Path, case: str) -> tuple[list[list[int]], list[list[int]]]:
    """Each row's token ids and positions, at the case's real tokens (its left padding dropped)."""
    ids, positions, mask = (np.load(root / case / f"{n}.npy", allow_pickle=False)
                            for n in ("input_ids", "position_ids", "attention_mask"))  # fmt: skip
    rows = [np.flatnonzero(m) for m in mask.astype(bool)]
    return [ids[b][r].tolist() for b, r in enumerate(rows)], [positions[b][r].tolist() for b, r in enumerate(rows)]


def decode_case(llama_cpp, ctx, rows: list[list[int]], positions: list[list[int]]) -> None:
    """One llama_batch of every row's tokens (row b: sequence b), every token an output, into an empty cache."""
    n = sum(len(r) for r in rows)
    batch = llama_cpp.llama_batch_init(n, 0, 1)
    try:
        k = 0
        for b, (row, pos) in enumerate(zip(rows, positions)):
            for token, p in zip(row, pos):
                batch.token[k], batch.pos[k], batch.n_seq_id[k], batch.logits[k] = token, p, 1, 1
                batch.seq_id[k][0] = b
                k += 1
        batch.n_tokens = n
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        status = llama_cpp.llama_decode(ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
    finally:
        llama_cpp.llama_batch_free(batch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a GGUF file, or a model directory to convert (--type)")
    parser.add_argument("references", type=Path)
    parser.add_argument("dumps", type=Path)
    parser.add_argument("--type", default="f32", help="the GGUF type a model directory is converted to (default f32)")
    parser.add_argument("--kv-cache", choices=("f32", "f16"), default="f16", help="the KV cache's type (llama.cpp's default: f16)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    import llama_cpp

    if llama_cpp.__version__ != LLAMA_CPP_PYTHON:
        print(f"dump.py reads ggml tensors as llama-cpp-python {LLAMA_CPP_PYTHON} lays them out; found {llama_cpp.__version__}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.model.is_dir():
        from convert import converted

        gguf = converted(args.model, args.type.lower())
    elif args.model.is_file():
        gguf = args.model
    else:
        print(f"dump.py: no GGUF file or model directory at {args.model}", file=sys.stderr)
        return 2
    cases = (args.references / "cases.txt").read_text().split()
    shapes = [read_case(args.references, c) for c in cases]
    n_tokens = max(sum(len(r) for r in rows) for rows, _ in shapes)
    n_seq = max(len(rows) for rows, _ in shapes)

    quiet = llama_cpp.llama_log_callback(lambda level, text, data: None)  # kept alive while llama.cpp may log
    llama_cpp.llama_log_set(quiet, None)
    llama_cpp.llama_backend_init()
    model_params = llama_cpp.llama_model_default_params()
    # llama.cpp's CPU backend may move q4_0/q8_0 weights into "extra buffer types" for the host's own kernels
    # (AMX tiles, repacked AVX2/AVX-512 blocks): which kernels run then depends on the host, and on an Intel Xeon
    # with AMX (2026-12-03) loading the tiny model's q8_0 and q4_0 GGUFs with them crashed (SIGSEGV). Off, every
    # host runs ggml's plain CPU kernels for each type: the same computation, and dumps, everywhere.
    model_params.use_extra_bufts = False
    model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), model_params)
    if not model:
        print(f"llama.cpp could not load {gguf}", file=sys.stderr)
        return 2
    lib = ggml_library()
    if lib.ggml_tensor_overhead() - ctypes.sizeof(GGMLTensor) not in (0, 32):  # GGML_OBJECT_SIZE precedes each tensor
        print("this ggml's struct ggml_tensor is not the one dump.py knows", file=sys.stderr)
        return 2
    recorder = Recorder(lib, llama_cpp.llama_model_n_layer(model))
    callback = llama_cpp.ggml_backend_sched_eval_callback(recorder)  # kept alive until the context is freed
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = params.n_batch = params.n_ubatch = max(256, -(-n_tokens // 256) * 256)
    params.n_seq_max, params.kv_unified = n_seq, True
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.n_threads = params.n_threads_batch = args.threads
    kv_type = llama_cpp.GGML_TYPE_F32 if args.kv_cache == "f32" else llama_cpp.GGML_TYPE_F16
    params.type_k = params.type_v = kv_type
    params.cb_eval, params.cb_eval_user_data = callback, None
    ctx = llama_cpp.llama_init_from_model(model, params)
    if not ctx:
        print("llama.cpp could not create a context", file=sys.stderr)
        return 2
    try:
        for case, (rows, positions) in zip(cases, shapes):
            recorder.tensors.clear()
            decode_case(llama_cpp, ctx, rows, positions)
            missing = sorted(recorder.wanted - set(recorder.tensors))
            if missing:
                print(f"{case}: llama.cpp's graph did not compute {', '.join(missing[:5])}", file=sys.stderr)
                return 1
            out = args.dumps / case
            out.mkdir(parents=True, exist_ok=True)
            for name, array in recorder.tensors.items():
                np.save(out / f"{name}.npy", array)
    finally:
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
