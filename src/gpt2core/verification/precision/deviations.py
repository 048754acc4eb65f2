"""Known deviations an engine declares (a dump map's "deviations", a subject's `deviations`): a checkpoint
that exceeds its budget but stays within the deviation's tolerance is WAIVED, with the reason, never a
plain PASS; `--require all` counts a waiver as not complete.

    {"checkpoints": "h*.mlp_act",        a pattern (fnmatch) or a list of them, over canonical names
     "tolerance": 2e-3,                  relative to the reference's scale: max|got - ref| <= tolerance * max|ref|
     "reason": "GELU through a float16 table (GGML_GELU_FP16)",
     "and_after": true}                  also every checkpoint after the first match, in forward-pass order
                                         (where the deviation's error travels in a chained pass)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

KEYS = ("checkpoints", "tolerance", "reason", "and_after")


@dataclass(frozen=True)
class Deviation:
    patterns: tuple[str, ...]
    tolerance: float
    reason: str
    and_after: bool = False

    def covers(self, name: str, order: list[str]) -> bool:
        """Whether checkpoint `name` (a step suffix '@...' ignored) is covered, `order` the forward-pass order."""
        base = name.split("@")[0]
        if any(fnmatch.fnmatchcase(base, p) for p in self.patterns):
            return True
        if not self.and_after or base not in order:
            return False
        first = next((i for i, n in enumerate(order) if any(fnmatch.fnmatchcase(n, p) for p in self.patterns)), None)
        return first is not None and order.index(base) > first

    def as_dict(self) -> dict:
        return {"checkpoints": list(self.patterns), "tolerance": self.tolerance, "reason": self.reason, "and_after": self.and_after}


def parse_deviations(data, where: str) -> tuple[Deviation, ...]:
    """A list of deviation objects (see the module docstring) -> Deviations; a ValueError naming `where` and the problem."""
    if data is None:
        return ()
    if not isinstance(data, (list, tuple)):
        raise ValueError(f"{where}: deviations must be a list of objects, got {type(data).__name__}")
    out = []
    for i, d in enumerate(data):
        at = f"{where}: deviations[{i}]"
        if isinstance(d, Deviation):
            out.append(d)
            continue
        if not isinstance(d, dict):
            raise ValueError(f"{at} must be an object with {', '.join(KEYS)}")
        unknown = sorted(k for k in d if k not in KEYS and not str(k).startswith("_"))
        if unknown:
            raise ValueError(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
        patterns = d.get("checkpoints")
        patterns = (patterns,) if isinstance(patterns, str) else patterns
        if not patterns or not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError(f"{at}: checkpoints must be a pattern or a non-empty list of them, e.g. 'h*.mlp_act'")
        tol = d.get("tolerance")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
            raise ValueError(f"{at}: tolerance must be a number between 0 and 1 (relative to max|ref|), got {tol!r}")
        reason = d.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{at}: a deviation needs its reason (a non-empty string)")
        and_after = d.get("and_after", False)
        if type(and_after) is not bool:
            raise ValueError(f"{at}: and_after must be true or false")
        out.append(Deviation(tuple(patterns), float(tol), reason.strip(), and_after))
    return tuple(out)


def waiver_for(deviations, name: str, order: list[str]) -> Deviation | None:
    """The first declared deviation covering `name`, or None."""
    return next((d for d in deviations if d.covers(name, order)), None)
