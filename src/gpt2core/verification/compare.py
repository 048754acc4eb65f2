"""Comparing one engine checkpoint with its reference: shape and dtype first, then values.

`compare` never broadcasts and never passes on a fallback: a wrong shape, a wrong dtype, a non-finite
value or a masked attention score that is not exactly the mask value is a failure of its own. Entries the
reference holds at the dtype's most negative value (masked attention scores) must match exactly and are
left out of the value scale, so 3.4e38 never becomes the tolerance's scale. Entries the model does not
define (`defined` False: padding positions, see gpt2core.verification.batch_layout) are not compared at
all, whatever they hold; the comparison counts the entries it compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .subject import axes_of

@dataclass
class Comparison:
    """The outcome of comparing checkpoint `name` with its reference (see `compare`)."""

    name: str
    shape: list[int]
    dtype: str
    max_abs: float  # max |got - ref| over the compared entries
    max_rel: float  # max_abs / max|ref|: the difference relative to the reference's scale
    atol: float  # the tolerance max_abs is held to
    worst: dict  # axis name -> index of the largest difference
    got_value: float = float("nan")
    ref_value: float = float("nan")
    problem: str | None = None  # a failure other than a value difference (shape, dtype, non-finite, mask)
    compared: int = 0  # entries compared (the defined ones)
    excluded: int = 0  # entries at positions the model does not define (padding), not compared
    waiver: str | None = None  # the reason of a declared deviation covering this checkpoint (precision.deviations)
    waiver_tol: float = 0.0  # the deviation's tolerance, relative to max|ref| (as max_rel)
    scale: float = 0.0  # max|ref| over the compared entries (0: none, or a problem)

    @property
    def within(self) -> bool:
        """Within its own tolerance (the budget), no waiver needed."""
        return self.problem is None and self.max_abs <= self.atol

    @property
    def waived(self) -> bool:
        """Beyond its budget, but within the tolerance of a deviation the engine declared."""
        return self.problem is None and not self.within and self.waiver is not None and self.max_rel <= self.waiver_tol

    @property
    def ok(self) -> bool:
        return self.within or self.waived

    @property
    def margin(self) -> float:
        """max_abs / atol: below 1 passes; how far below says how much room the tolerance leaves."""
        return self.max_abs / self.atol if self.problem is None else float("inf")

    @property
    def budget_rel(self) -> float:
        """The tolerance relative to the reference's scale (as max_rel)."""
        return self.atol / self.scale if self.scale else self.atol

    @property
    def layer(self) -> int | None:
        head = self.name.split(".", 1)[0]
        return int(head[1:]) if head.startswith("h") and head[1:].isdigit() else None

    def message(self) -> str:
        if self.problem is not None:
            return f"{self.name}: {self.problem}"
        where = ", ".join(f"{k} {v}" for k, v in self.worst.items())
        layer = "" if self.layer is None else f"layer {self.layer}, "
        verdict = "ok" if self.within else f"WAIVED ({self.waiver}; max rel {self.max_rel:.3e} within the declared {self.waiver_tol:.3e})" if self.waived else "EXCEEDS TOLERANCE"
        return (
            f"{self.name}: {verdict}: shape {self.shape} {self.dtype}; max abs diff {self.max_abs:.3e} "
            f"(tolerance {self.atol:.3e}, margin {self.margin:.3g}), max rel diff {self.max_rel:.3e}; "
            f"worst at {layer}{where}: got {self.got_value!r}, reference {self.ref_value!r}"
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name, "ok": self.ok, "shape": self.shape, "dtype": self.dtype,
            "max_abs": self.max_abs, "max_rel": self.max_rel, "tolerance": self.atol,
            "margin": self.margin if np.isfinite(self.margin) else None, "layer": self.layer,
            "worst": self.worst, "problem": self.problem, "compared": self.compared, "excluded": self.excluded,
            "waived": self.waived, "waiver": self.waiver if self.waived else None,
        }  # fmt: skip


def _problem(name, got, problem) -> Comparison:
    shape = list(np.shape(got))
    dtype = str(getattr(got, "dtype", type(got).__name__))
    return Comparison(name, shape, dtype, float("inf"), float("inf"), 0.0, {}, problem=problem)


def named_position(axes, index) -> str:
    """An entry's position with its axes named, as in every message: 'batch 1, head 2, query 3, key 0'."""
    return ", ".join(f"{axis} {int(i)}" for axis, i in zip(axes, index))


def _index(mask: np.ndarray, axes) -> str:
    """The first True entry of mask, its axes named (named_position)."""
    return named_position(axes, np.argwhere(mask)[0])


def compare(name: str, got, ref: np.ndarray, tol: dict, defined: np.ndarray | None = None, at_least: float = 0.0) -> Comparison:
    """Compare `got` with `ref`: |got - ref| <= max(tol[dtype] * max|ref|, at_least) over the unmasked entries
    (at_least: an absolute budget measured for this checkpoint, gpt2core.verification.precision.budgets).

    `defined` (bool, the reference's shape; None: every entry) selects the entries the model defines; the
    others are neither compared nor checked for finiteness nor part of the scale.

    The tolerance is relative to the reference's largest magnitude (1 when the reference is all zeros):
    no floor of 1, so a checkpoint whose values are all small (attention output of random weights,
    ~0.03) is held to the same relative precision as the logits; a tolerance with a `floor` attribute
    (tolerances.FlooredTolerance) scales by max(floor, max|ref|) instead.
    """
    ref = np.asarray(ref)
    if not isinstance(got, np.ndarray):
        return _problem(name, got, f"expected a NumPy array, got {type(got).__name__}")
    if got.shape != ref.shape:
        return _problem(name, got, f"shape {list(got.shape)} != reference shape {list(ref.shape)}")
    if got.dtype != ref.dtype:
        return _problem(name, got, f"dtype {got.dtype} != reference dtype {ref.dtype}")
    if ref.dtype not in tol:
        return _problem(name, got, f"no tolerance for dtype {ref.dtype}")
    if defined is not None and (defined.shape != ref.shape or defined.dtype != bool):
        raise ValueError(f"{name}: the defined entries are {defined.dtype} {list(defined.shape)}, not bool {list(ref.shape)}")
    axes = axes_of(name)
    if len(axes) != ref.ndim:
        axes = tuple(f"axis{i}" for i in range(ref.ndim))
    everywhere = True if defined is None else defined  # `where=` of the checks: the defined entries
    if not np.all(np.isfinite(ref), where=everywhere):
        return _problem(name, got, f"the reference has non-finite values, first at {_index(everywhere & ~np.isfinite(ref), axes)}")
    masked = ref == np.finfo(ref.dtype).min
    if defined is not None:
        masked &= defined
    any_masked = bool(masked.any())  # most checkpoints hold none, and skip the check below
    if any_masked and np.logical_and(got != ref, masked).any():  # no gathered copies of the masked entries
        at = _index(masked & (got != ref), axes)
        return _problem(name, got, f"a masked entry is not the mask value {float(np.finfo(ref.dtype).min)!r} at {at}")
    if not np.all(np.isfinite(got), where=everywhere):
        return _problem(name, got, f"non-finite value at {_index(everywhere & ~np.isfinite(got), axes)}")
    # one float64 temporary the size of the checkpoint, not five (the logits of a 128-token case of the 355M
    # shape are 51 MB in float64): the subtraction casts as it goes, abs and the masking work in place
    with np.errstate(invalid="ignore", over="ignore"):  # whatever padding positions hold is never read
        diff = np.subtract(got, ref, dtype=np.float64)
    np.abs(diff, out=diff)  # 0 at the masked entries already: got equals ref there (checked above)
    if defined is not None:
        diff[~defined] = 0.0
    scaled = ~masked if defined is None else defined & ~masked  # the entries that set the scale
    # max |ref| over them (0 over none) from their largest and smallest values: no |ref| copy
    ref_max = max(float(np.max(ref, where=scaled, initial=-np.inf)), -float(np.min(ref, where=scaled, initial=np.inf)), 0.0)
    scale = max(ref_max, getattr(tol, "floor", 0.0))  # a FlooredTolerance holds small checkpoints to an absolute one
    atol = max(tol[ref.dtype] * (scale if scale > 0 else 1.0), at_least)
    compared = ref.size if defined is None else int(defined.sum())
    counts = {"compared": compared, "excluded": ref.size - compared}
    if not counts["compared"]:
        return Comparison(name, list(ref.shape), str(ref.dtype), 0.0, 0.0, atol, {}, **counts)  # ty: ignore[invalid-argument-type] (counts: the two int fields)
    flat = int(np.argmax(diff))
    idx = np.unravel_index(flat, diff.shape)
    max_abs = float(diff[idx])
    return Comparison(
        name, list(ref.shape), str(ref.dtype), max_abs, max_abs / ref_max if ref_max else max_abs, atol,
        dict(zip(axes, (int(i) for i in idx))), float(got[idx]), float(ref[idx]), **counts, scale=ref_max,  # ty: ignore[invalid-argument-type] (as above)
    )  # fmt: skip
