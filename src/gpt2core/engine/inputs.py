"""Checking what a caller passes to the forward pass and to generate: token ids and attention masks."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def as_token_ids(input_ids, vocab_size: int) -> np.ndarray:
    """Validate token ids and return them as a [B, T] int64 array."""
    ids = np.asarray(input_ids)
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"input_ids must be integers, got dtype {ids.dtype}")
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2:
        raise InputError(f"input_ids must have shape [T] or [B, T], got shape {list(np.shape(input_ids))}")
    if ids.size == 0:
        raise InputError(f"input_ids is empty (shape {list(np.shape(input_ids))})")
    bad = (ids < 0) | (ids >= vocab_size)
    if bad.any():
        b, t = np.argwhere(bad)[0]
        raise InputError(
            f"token id {int(ids[b, t])} at [{b}, {t}] is outside the vocabulary [0, {vocab_size})"
        )
    return ids.astype(np.int64, copy=False)


def as_attention_mask(attention_mask, shape: tuple[int, int]) -> np.ndarray:
    """Validate a 0/1 mask of the given [B, S] shape and return it as int64."""
    mask = np.asarray(attention_mask)
    if mask.shape != shape:
        raise InputError(f"attention_mask has shape {list(mask.shape)}, expected {list(shape)} (batch, positions)")
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)) or not ((mask == 0) | (mask == 1)).all():
        raise InputError("attention_mask must contain only 0 (padding) and 1 (token)")
    return mask.astype(np.int64)
