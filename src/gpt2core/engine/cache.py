"""The key/value cache for incremental decoding: preallocated once, written in place, never regrown."""

from __future__ import annotations

import numpy as np

from .errors import InputError


class KVCache:
    """Keys and values of every layer for positions [0, length), with room for `capacity` positions.

    keys, values: [n_layer, B, H, capacity, D]; mask: [B, capacity] attention mask of the cached positions.
    """

    keys: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    length: int

    def __init__(self, n_layer: int, batch_size: int, n_head: int, head_dim: int, capacity: int, dtype):
        shape = (n_layer, batch_size, n_head, capacity, head_dim)
        self.keys = np.zeros(shape, dtype=dtype)
        self.values = np.zeros(shape, dtype=dtype)
        self.mask = np.zeros((batch_size, capacity), dtype=np.int64)
        self.length = 0

    @property
    def batch_size(self) -> int:
        return self.keys.shape[1]

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    def check_room(self, n_new: int) -> None:
        if self.length + n_new > self.capacity:
            raise InputError(
                f"KV cache holds {self.length} of {self.capacity} positions; {n_new} more do not fit"
            )

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write layer `layer`'s new k, v ([B, H, T, D]) after the cached ones; return all [B, H, length+T, D]."""
        end = self.length + k.shape[2]
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, new_mask: np.ndarray) -> None:
        """Commit the positions every layer has appended: new_mask is their [B, T] attention mask."""
        end = self.length + new_mask.shape[1]
        self.mask[:, self.length : end] = new_mask
        self.length = end
