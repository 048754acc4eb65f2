"""Which entries of a checkpoint the model defines, and batches laid out the way engines lay them out.

GPT-2 defines its outputs at real tokens only: a row's query positions that hold a token, over the key
positions that hold one. What a padding position holds (in transformers a padding query attends uniformly
to every key, an artefact of its mask) is not model output, so it is never compared: `defined_entries`
says which entries of a checkpoint count. Masked entries between real tokens (future keys) are defined:
their convention is still checked.

gpt2core's cases are left-padded [B, T]: row b holds its `length` tokens at positions T - length .. T - 1.
An engine may lay a batch out otherwise, and declares it (a dump map's "batch_layout", a subject's
`batch_layout` attribute):
  left-padded    as gpt2core's cases: [B, T, ...], tokens at the end of each row
  right-padded   [B, T', ...], row b's tokens at 0 .. length - 1 (T' >= the longest row)
  packed         no batch axis: every row's tokens one after the other on one token axis [N, ...]
                 (N >= the sum of the lengths), as llama.cpp and vLLM batch them
A key axis may be longer than the case's keys (a KV-cache window): the keys the case needs are at the same
offsets as the queries, the rest is ignored. `to_left_padded` brings an engine's array (axes already in
gpt2core's order) back to the case's layout; entries at padding positions are filled with NaN, which no
comparison reads.
"""

from __future__ import annotations

import numpy as np

from .errors import DumpError
from .subject import BATCH_LAYOUTS, axes_of
TOKEN_AXES = ("position", "query", "key")


def token_mask(case) -> np.ndarray:
    """[B, T] bool: True where the case holds a token (its attention mask; all True without one)."""
    if case.attention_mask is None:
        return np.ones(case.input_ids.shape, bool)
    return np.asarray(case.attention_mask).astype(bool)


def defined_entries(name: str, tokens: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A bool array of `shape` (checkpoint `name`'s, canonical layout): True where the model defines the
    entry, i.e. every token axis (position, query, key) is at a token of `tokens` [B, T] in that row."""
    axes = axes_of(name)
    defined = np.ones(shape, bool)
    if len(axes) != len(shape):
        raise ValueError(f"{name}: shape {list(shape)} does not have the axes {axes}")
    batch = axes.index("batch")
    for i, axis in enumerate(axes):
        if axis not in TOKEN_AXES:
            continue
        if tokens.shape != (shape[batch], shape[i]):
            raise ValueError(f"{name}: a token mask {list(tokens.shape)} does not fit its {axis} axis in shape {list(shape)}")
        view = [1] * len(shape)
        view[batch], view[i] = shape[batch], shape[i]
        defined &= tokens.reshape(view)
    return defined


def row_starts(lengths: np.ndarray, layout: str, width: int) -> np.ndarray:
    """[B]: where row b's first token sits on the engine's token axis (left-padded rows of `width` positions:
    after its padding, right-padded: 0, packed: after the rows before it)."""
    if layout == "left-padded":
        return width - lengths
    if layout == "right-padded":
        return np.zeros_like(lengths)
    if layout == "packed":
        return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    raise ValueError(f"batch layout {layout!r}; expected one of {', '.join(BATCH_LAYOUTS)}")


def to_left_padded(array: np.ndarray, name: str, tokens: np.ndarray, layout: str, where: str) -> np.ndarray:
    """An engine's checkpoint (gpt2core's axis order; no batch axis when packed; token axes as long as the
    engine's) -> the case's layout [B, ..., T, ...], NaN at padding positions.

    Row b's tokens are copied from their place on the engine's token axes (see `row_starts`; a left-padded
    engine's rows end at T, so its offsets are T - length). A token axis too short for a row is a DumpError."""
    T = tokens.shape[1]
    lengths = tokens.sum(axis=1).astype(np.int64)
    axes = axes_of(name)
    engine_axes = axes[1:] if layout == "packed" else axes  # packed: gpt2core's axes without the batch
    if array.ndim != len(engine_axes):
        raise DumpError(f"{where}: {array.ndim} axes, expected {len(engine_axes)} ({', '.join(engine_axes)})")
    starts = row_starts(lengths, layout, T)
    shape = [len(lengths)] + [T if a in TOKEN_AXES else n for a, n in zip(axes[1:], array.shape[-len(axes) + 1 :])]
    out = np.full(shape, np.nan, dtype=array.dtype)
    for b, (start, length) in enumerate(zip(starts, lengths)):
        source = array if layout == "packed" else array[b]
        src, dst = [], []
        for i, axis in enumerate(axes[1:]):
            if axis in TOKEN_AXES:
                if source.shape[i] < start + length:
                    raise DumpError(f"{where}: its {axis} axis has {source.shape[i]} entries; row {b} of the case "
                                    f"({layout}) needs {start + length}")  # fmt: skip
                src.append(slice(start, start + length))
                dst.append(slice(T - length, T))
            else:
                src.append(slice(None))
                dst.append(slice(None))
        out[b][tuple(dst)] = source[tuple(src)]
    return out


def ids_to_left_padded(ids: np.ndarray, tokens: np.ndarray, layout: str) -> np.ndarray:
    """Generated ids [B, L] with each row's prompt then its new tokens, in the engine's batch layout (left-
    or right-padded; a packed engine returns its rows right-padded) -> [B, T + n] in the case's layout, n the
    number of new tokens (the width less the longest row), -1 at padding."""
    B, T = tokens.shape
    lengths = tokens.sum(axis=1)
    if layout == "left-padded" or ids.ndim != 2 or ids.shape[0] != B:
        return ids
    n = ids.shape[1] - int(lengths.max(initial=0))
    out = np.full((B, T + n), -1, dtype=ids.dtype)
    for b, length in enumerate(lengths):
        out[b, T - length :] = ids[b, : length + n]
    return out
