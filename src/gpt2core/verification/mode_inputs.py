"""What an engine is asked to run in each mode beyond the chained pass, fixed by the case alone and written into
every reference set as .npy files (little-endian int64 or float64) so an engine in any language reads them:

  <case>/decode_split.npy       int64 [1]: the cached mode prefills positions [0, split), then feeds positions
                                split .. T-1 one at a time with its cache
  <case>/unrelated_ids.npy      int64 [B, T]: the request the cached mode runs first (prefill only, same mask and
                                positions), so state kept between requests shows
  <case>/generate_tokens.npy    int64 [1]: greedy generation's number of new tokens (cases that record one)
  <case>/sample_ids.npy         int64 [B, T + n]: transformers' sampled path (cases that record one)
  <case>/sample_settings.npy    float64 [3]: temperature, top_k, top_p of that path (top_k 0 and top_p 1 are off)

Python subjects get the same through the subject protocol (decode(case, split), generate(case, n),
sample_scores(case, settings, ids)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPLIT, UNRELATED, GENERATE, SAMPLE_IDS, SAMPLE_SETTINGS = (
    "decode_split", "unrelated_ids", "generate_tokens", "sample_ids", "sample_settings")  # fmt: skip


def default_split(case) -> int:
    """Where decoding starts: half way, and after the first column where every row has a token."""
    ids, mask = case.input_ids, case.attention_mask
    T = ids.shape[1]
    split = max(1, T // 2) if mask is None else int(np.argmax(mask.all(axis=0))) + 1
    return min(split, T - 1) if T > 1 else T


def unrelated_ids(input_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """[B, T]: another request of the case's shape (each id + 1, modulo the vocabulary)."""
    return (input_ids + 1) % vocab_size


class Unrelated:
    """Another request of the case's shape (`unrelated_ids`), run before the case in the cached mode so that
    state kept between requests shows."""

    def __init__(self, case, vocab_size: int):
        self.name = case.name + "-unrelated"
        self.input_ids = unrelated_ids(case.input_ids, vocab_size)
        self.attention_mask, self.position_ids = case.attention_mask, case.position_ids


def write_mode_inputs(case_dir: Path, case, vocab_size: int, greedy_tokens: int | None, sampling) -> None:
    """The files above for one case; `sampling` is (settings, ids) or None."""
    save = lambda name, array, dtype="<i8": np.save(case_dir / f"{name}.npy", np.asarray(array, dtype=dtype), allow_pickle=False)  # noqa: E731
    save(SPLIT, [default_split(case)])
    save(UNRELATED, unrelated_ids(case.input_ids, vocab_size))
    if greedy_tokens is not None:
        save(GENERATE, [greedy_tokens])
    if sampling is not None:
        settings, ids = sampling
        save(SAMPLE_IDS, ids)
        save(SAMPLE_SETTINGS, [settings.temperature, settings.top_k, settings.top_p], "<f8")
