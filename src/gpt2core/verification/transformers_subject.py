"""transformers itself at a precision class, as a subject: the honest implementation
(gpt2core.verification.precision.honest) run on each case, every checkpoint captured from its own forward
pass and handed over in float32.

    gpt2core verify --model DIR --subject gpt2core.verification.transformers_subject:float16
    (also :bfloat16, :int8, :float32_f16kv, :gguf_f16, :gguf_q8_0, :gguf_q4_0)

What it shows: a class's honest implementation passes its own class (by construction, at about 1/BUDGET_FACTOR
of each budget) and fails a stricter one; with a fault injected into its modules it shows which faults a
class can see. Needs torch and transformers.
"""

from __future__ import annotations

import numpy as np

from .errors import SubjectError
from .precision.classes import precision_class


class TransformersSubject:
    capabilities = frozenset()
    masked_scores = {"at_or_below": -6e4}  # float16 masks with its own minimum, -65504; the others with theirs

    def __init__(self, model_dir, precision: str):
        import transformers

        from .precision.honest import honest_model

        self.model_dir = model_dir
        self.precision = precision_class(precision).name
        self.model = honest_model(model_dir, self.precision)
        self.name = f"transformers {transformers.__version__} ({self.precision})"

    def checkpoints(self, case) -> dict[str, np.ndarray]:
        from .capture import capture
        from .precision.honest import float16_attention

        with float16_attention(self.model, self.precision):
            arrays = capture(self.model_dir, case, np.float32, model=self.model)
        return {name: a.astype(np.float32, copy=False) for name, a in arrays.items()}


def factory(precision: str):
    """A subject factory for `gpt2core verify --subject` (float32 references only)."""

    def make(model_dir, dtype):
        if np.dtype(dtype) != np.float32:
            raise SubjectError(f"transformers at {precision} is compared with float32 references, not {np.dtype(dtype).name}")
        return TransformersSubject(model_dir, precision)

    make.dtypes = ("float32",)  # ty: ignore[missing-attribute] (read by verify: the dtypes a factory takes)
    return make


float16, bfloat16, int8 = factory("float16"), factory("bfloat16"), factory("int8")
float32_f16kv, gguf_f16, gguf_q8_0, gguf_q4_0 = (factory("float32-f16kv"), factory("gguf-f16"), factory("gguf-q8_0"),
                                                 factory("gguf-q4_0"))  # fmt: skip
