"""gpt2core's own NumPy engine as a subject: the one adapter between the engine and the verification.

It offers every capability. Its stages are the engine's own functions (gpt2core.engine.model and .ops),
looked up at call time, so a fault the catalogue injects into one of them shows in every mode.
"""

from __future__ import annotations

import numpy as np

from ..engine import model as m
from ..engine import ops
from ..engine.generate import replay_scores
from ..engine.loading import load
from ..engine.model import GPT2
from .errors import SubjectError
from .model_dir import read_model_dir
from .sampling import SCORES, step_name
from .subject import checkpoint_names

QKV = ("q", "k", "v")


class NumpySubject:
    """The subject protocol over a loaded `gpt2core.engine.GPT2`."""

    capabilities = frozenset({"stages", "decode", "generate", "sample"})

    def __init__(self, model: GPT2, name: str = "gpt2core (NumPy)"):
        ours, canonical = m.checkpoint_names(model.config.n_layer), checkpoint_names(model.config.n_layer)
        if ours != canonical:
            raise SubjectError(f"the engine records {ours}, the protocol names {canonical}")
        self.model, self.name = model, name

    def checkpoints(self, case) -> dict[str, np.ndarray]:
        """Every checkpoint of the engine's forward pass on the case's ids and mask. The engine derives the
        positions from the mask itself, as in generation, so a fault in that derivation shows."""
        rec: dict[str, np.ndarray] = {}
        self.model.forward(case.input_ids, case.attention_mask, checkpoints=rec)
        return rec

    def stage(self, name: str, case, ref) -> np.ndarray:
        """Checkpoint `name` computed by the engine's stage from the reference's inputs; `ref(name)` gives those."""
        p, cfg = self.model.params, self.model.config
        eps = cfg.layer_norm_epsilon
        if name == "embeddings":
            return m.embed(case.input_ids, case.position_ids, p)
        if name == "ln_f":
            return m.final_layer_norm(ref(f"h{cfg.n_layer - 1}.out"), p, eps)
        if name == "logits":
            return m.lm_head(ref("ln_f"), p)
        head, kind = name.split(".")
        layer = int(head[1:])
        block = p.blocks[layer]

        def block_input():
            return ref("embeddings") if layer == 0 else ref(f"h{layer - 1}.out")

        if kind == "ln_1":
            return ops.layer_norm(block_input(), block.ln_1.g, block.ln_1.b, eps)
        if kind in QKV:
            return m.qkv_heads(ref(f"{head}.ln_1"), block, cfg.n_head)[QKV.index(kind)]
        if kind == "attn_scores":
            T = case.input_ids.shape[1]  # references are full forward passes: queries = keys = T
            allowed = m.attention_allowed(T, T, case.attention_mask)
            return ops.attention_scores(ref(f"{head}.q"), ref(f"{head}.k"), allowed)
        if kind == "attn_probs":
            return ops.softmax(ref(f"{head}.attn_scores"))
        if kind == "attn_heads":
            return ops.merge_heads(ref(f"{head}.attn_probs") @ ref(f"{head}.v"))
        if kind == "attn_out":
            return m.attention_projection(ref(f"{head}.attn_heads"), block)
        if kind == "resid_mid":
            return block_input() + ref(f"{head}.attn_out")
        if kind == "ln_2":
            return ops.layer_norm(ref(f"{head}.resid_mid"), block.ln_2.g, block.ln_2.b, eps)
        if kind == "mlp_fc":
            return m.mlp_fc(ref(f"{head}.ln_2"), block)
        if kind == "mlp_act":
            return ops.gelu(ref(f"{head}.mlp_fc"))
        if kind == "mlp_out":
            return m.mlp_proj(ref(f"{head}.mlp_act"), block)
        if kind == "out":
            return ref(f"{head}.resid_mid") + ref(f"{head}.mlp_out")
        raise KeyError(f"unknown checkpoint {name!r}")

    def decode(self, case, split: int):
        """Prefill positions [0, split) into a new cache, then yield the checkpoints of each one-position step."""
        ids, mask = case.input_ids, case.attention_mask
        # room for twice the case (not n_positions: 3.8 GB for a 3-row batch of the 1558M shape in float64), so a
        # cache that keeps another request's state or advances twice shows wrong values rather than running out
        capacity = min(2 * ids.shape[1], self.model.config.n_positions)
        cache = self.model.new_cache(batch_size=ids.shape[0], capacity=capacity)
        self.model(ids[:, :split], None if mask is None else mask[:, :split], cache=cache)
        for t in range(split, ids.shape[1]):
            rec: dict[str, np.ndarray] = {}
            self.model(ids[:, t : t + 1], None if mask is None else mask[:, : t + 1], cache=cache, checkpoints=rec)
            yield rec

    def generate(self, case, max_new_tokens: int) -> np.ndarray:
        """The engine's greedy continuation of the case: ids [B, T + n], n <= max_new_tokens."""
        return self.model.generate(case.input_ids, max_new_tokens, attention_mask=case.attention_mask)


    def sample_scores(self, case, settings, path_ids) -> dict[str, np.ndarray]:
        """The engine's processed scores along a sampled path ([B, T + n] ids, tokens forced, cache on), per step."""
        scores = replay_scores(self.model, case.input_ids, path_ids, settings.temperature, settings.top_k,
                               settings.top_p, attention_mask=case.attention_mask)  # fmt: skip
        return {step_name(SCORES, i): s for i, s in enumerate(scores)}


def numpy_subject(model_dir, dtype) -> NumpySubject:
    """The subject factory for gpt2core's engine: `factory(model_dir, dtype)`, as any subject's."""
    md = read_model_dir(model_dir)
    return NumpySubject(load(md.path, dtype=np.dtype(dtype), config=md.config))
