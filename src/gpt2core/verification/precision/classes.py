"""Precision classes: the arithmetic an engine declares it runs (a dump map's `dtype`, a subject's `precision`).

Each class names the reference set it is compared with, the dtypes its dump files may have, the honest
implementation its budgets are measured on (gpt2core.verification.precision.honest) and the fixed floor
below which no budget goes. The budget of a checkpoint on a case is

    max(floor * max|ref|, BUDGET_FACTOR * honest error)

where the honest error is the largest |honest - float64 transformers| over the entries the model defines
(gpt2core.verification.precision.budgets; BUDGET_FACTOR and the floors: gpt2core.verification.tolerances).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..tolerances import PRECISION_FLOOR


@dataclass(frozen=True)
class PrecisionClass:
    name: str
    description: str  # what an engine of this class computes, and how the honest implementation emulates it
    reference_dtype: str  # the reference set it is compared with: "float32" or "float64"
    dump_dtypes: tuple[str, ...]  # the dtypes a dump file may have ("bfloat16": raw bfloat16 bits in a uint16 file)
    calibrated: bool = True  # False: held to the floor alone (float64: there is no more exact transformers)

    @property
    def floor(self) -> float:
        return PRECISION_FLOOR[self.name]


CLASSES = {c.name: c for c in [
    PrecisionClass("float64", "float64 throughout; held to the fixed float64 tolerance", "float64", ("float64",), calibrated=False),
    PrecisionClass("float32", "float32 throughout; honest: transformers in float32", "float32", ("float32",)),
    PrecisionClass("float16", "float16 weights and activations; honest: transformers in float16 (torch CPU)", "float32",
                   ("float16", "float32")),
    PrecisionClass("bfloat16", "bfloat16 weights and activations; honest: transformers in bfloat16 (torch CPU)", "float32",
                   ("bfloat16", "float32")),
    PrecisionClass("int8", "int8 weights (one scale per output channel) and int8 inputs of every linear layer (one scale "
                   "per row), computed in float32, as CTranslate2's int8_float32; honest: transformers in float32 with "
                   "its weights and linear inputs rounded so", "float32", ("float32",)),
    PrecisionClass("float32-f16kv", "float32 with a float16 KV cache (llama.cpp's default cache type): q, k, v and the "
                   "probabilities entering attention's products rounded to float16", "float32", ("float32", "float16")),
    PrecisionClass("gguf-f16", "llama.cpp's f16 GGUF: 2-D weights float16 (not the position embeddings), the inputs of "
                   "their products rounded to float16, a float16 KV cache, float32 elsewhere", "float32", ("float32", "float16")),
    PrecisionClass("gguf-q8_0", "llama.cpp's q8_0 GGUF: 2-D weights in q8_0 blocks (32 values, one float16 scale), "
                   "their inputs rounded to q8_0 as ggml's CPU dot products do, a float16 KV cache", "float32", ("float32", "float16")),
    PrecisionClass("gguf-q4_0", "llama.cpp's q4_0 GGUF: 2-D weights in q4_0 blocks (32 4-bit values, one float16 scale), "
                   "their inputs rounded to q8_0, a float16 KV cache", "float32", ("float32", "float16")),
]}  # fmt: skip
ALIASES = {"f16": "gguf-f16", "q8_0": "gguf-q8_0", "q4_0": "gguf-q4_0", "int8_float32": "int8"}


def precision_class(name: str) -> PrecisionClass:
    """The class named `name` (or an alias: f16, q8_0, q4_0, int8_float32); a ValueError naming the known ones."""
    key = ALIASES.get(name, name)
    if key not in CLASSES:
        raise ValueError(f"unknown precision {name!r}; known: {', '.join(CLASSES)} (aliases: {', '.join(ALIASES)})")
    return CLASSES[key]
