"""llama.cpp's logits against a float32 reference set, judged in each GGUF type's precision class: a check of
the classes' honest implementations (gpt2core.verification.precision.honest) against the real engine.

Each GGUF (converted with llama.cpp's own convert_hf_to_gguf.py: --outtype f32, f16, q8_0) is run through
llama-cpp-python (pip install llama-cpp-python gguf; it compiles llama.cpp) row by row on every case's tokens,
and its logits at every token are compared with the reference's under the class's measured budgets. Prints
the worst logits margin (max abs diff / budget) per GGUF and class: below 1 passes.

    python benchmarks/llama_cpp_logits.py REFS F32.gguf F16.gguf Q8_0.gguf

Measured on the built-in 124M model (llama-cpp-python 0.3.36, CPU): f32 GGUF with a float32 KV cache in class
float32 25.4 (its CPU GELU goes through a float16 table); the same with the default float16 KV cache in class
float32-f16kv 0.44; f16 GGUF in gguf-f16 0.29; q8_0 GGUF in gguf-q8_0 0.28.
"""

from __future__ import annotations

import sys

import numpy as np

from gpt2core.verification.batch_layout import token_mask
from gpt2core.verification.precision.budgets import budgets_for, ensure_budgets
from gpt2core.verification.reference_set import load_references


def worst_logits_margin(llm, refs, budgets) -> float:
    worst = 0.0
    for case in refs.cases:
        ref, tokens = case.array("logits"), token_mask(case)
        atol = max(budgets.cls.floor * np.abs(ref[tokens]).max(), budgets.atol(case.name, "logits"))
        for row in range(ref.shape[0]):
            ids = case.input_ids[row][tokens[row]].tolist()
            llm.reset()
            llm.eval(ids)
            got = np.array(llm.scores[: len(ids)])
            worst = max(worst, float(np.abs(got - ref[row][tokens[row]]).max() / atol))
    return worst


def main() -> int:
    import llama_cpp

    refs_dir, f32, f16, q8 = sys.argv[1:5]
    refs = load_references(refs_dir)
    model = refs.manifest["model"]["path"]
    f32_kv = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32}
    runs = [(f32, "float32", f32_kv), (f32, "float32-f16kv", {}), (f16, "gguf-f16", {}), (q8, "gguf-q8_0", {})]
    for gguf, precision, kv in runs:
        ensure_budgets(refs, model, precision)
        llm = llama_cpp.Llama(gguf, logits_all=True, n_ctx=256, n_batch=256, verbose=False, flash_attn=False, **kv)
        margin = worst_logits_margin(llm, refs, budgets_for(refs, precision))
        print(f"{gguf} ({'float32' if kv else 'float16'} KV cache) in class {precision}: worst logits margin {margin:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
