"""Comparing an engine tensor with a reference: shape and dtype first, then values, with a useful report."""

from __future__ import annotations

import numpy as np


def worst_element(got: np.ndarray, ref: np.ndarray) -> tuple[tuple[int, ...], float, float]:
    """Index of the largest |got - ref|, that difference, and the largest relative difference."""
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape)
    rel = diff / np.maximum(np.abs(ref.astype(np.float64)), np.finfo(np.float64).tiny)
    return tuple(int(i) for i in idx), float(diff[idx]), float(rel.max())


def describe(name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> str:
    idx, abs_diff, rel_diff = worst_element(got, ref)
    return (
        f"{name}: shape {list(got.shape)} {got.dtype}; worst element at {list(idx)}: got {got[idx]!r}, "
        f"reference {ref[idx]!r}; max abs diff {abs_diff:.3e}, max rel diff {rel_diff:.3e} "
        f"(atol {atol:.1e}, rtol {rtol:.1e})"
    )


def assert_close(name: str, got, ref, atol: float, rtol: float = 0.0) -> float:
    """Fail unless got has ref's shape and dtype and |got - ref| <= atol + rtol*|ref| everywhere.

    Returns the max abs difference (for reporting measured margins).
    """
    assert isinstance(got, np.ndarray), f"{name}: expected a NumPy array, got {type(got).__name__}"
    ref = np.asarray(ref)
    assert got.shape == ref.shape, f"{name}: shape {list(got.shape)} != reference shape {list(ref.shape)}"
    assert got.dtype == ref.dtype, f"{name}: dtype {got.dtype} != reference dtype {ref.dtype}"
    assert np.isfinite(ref).all(), f"{name}: the reference itself has non-finite values"
    ok = np.abs(got - ref) <= atol + rtol * np.abs(ref)
    assert ok.all(), describe(name, got, ref, atol, rtol)
    return float(np.abs(got - ref).max()) if got.size else 0.0
