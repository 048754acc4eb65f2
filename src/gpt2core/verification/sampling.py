"""Sampled generation verified against transformers' `generate(do_sample=True)`, step by step.

The oracle is transformers itself (gpt2core.verification.capture.capture_sampling): `generate` with a torch
seed, `output_scores=True` and `output_logits=True` gives, per step, the scores it sampled from (the last
position's logits cast to float32, then temperature, top-k and top-p, filtered tokens at -inf), the raw
logits they came from, and the sampled path. A subject offering "sample" replays that path (the sampled
tokens forced, its own cache on) and returns its processed scores of each step:

  sample.scores@step=N    [B, V] float32, N = 0 .. max_new_tokens - 1   (sample.logits@step=N: the raw logits)

`compare_scores` checks shape and dtype, then that the same tokens are filtered (-inf), then the finite
scores within SAMPLE_SCORES_TOL. The one exception to "the same tokens": a token whose fate transformers
decided within rounding of a filter's threshold or by the order of tied scores (`undecided_tokens`),
recomputed from transformers' own raw logits. Such tokens are counted in the comparison, never silently
passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .compare import Comparison, _problem, compare, named_position
from .errors import DumpError
from .tolerances import SAMPLE_CUMULATIVE_TOL, SAMPLE_SCORES_TOL

SCORES, LOGITS = "sample.scores", "sample.logits"


@dataclass(frozen=True)
class SamplingSettings:
    """transformers' sampling settings (top_k 0 and top_p 1.0 switch a filter off) and the torch seed."""

    temperature: float
    top_k: int
    top_p: float
    seed: int
    max_new_tokens: int

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingSettings":
        s = cls(float(d["temperature"]), int(d["top_k"]), float(d["top_p"]), int(d["seed"]), int(d["max_new_tokens"]))
        if not (s.temperature > 0 and s.top_k >= 0 and 0 < s.top_p <= 1 and s.max_new_tokens >= 1):
            raise ValueError(f"sampling settings out of range: {d}")
        return s


# What every reference set records, each on a case of its own (reference_set.sampling_cases): a temperature
# below 1 with both filters on, where top-p usually decides; and one above 1 with top-k alone, where top-k
# decides (on the stress model's sharp logits top-p 0.9 keeps only a few tokens, hiding top-k's threshold).
SAMPLING_RUNS = (
    SamplingSettings(temperature=0.8, top_k=40, top_p=0.9, seed=0, max_new_tokens=4),
    SamplingSettings(temperature=1.5, top_k=5, top_p=1.0, seed=1, max_new_tokens=4),
)


def step_name(kind: str, step: int) -> str:
    """'sample.scores@step=3'."""
    return f"{kind}@step={step}"


def undecided_tokens(raw: np.ndarray, settings: SamplingSettings, atol: float) -> np.ndarray:
    """[B, V] bool: tokens whose filtering transformers decided within rounding of a threshold, from its raw
    float32 logits [B, V] (recomputed in float64): where the k-th and (k+1)-th largest scores are within
    2 atol, the tokens within 2 atol of either; a cumulative probability within SAMPLE_CUMULATIVE_TOL + 2 atol of
    1 - top_p, or a score tied (within 2 atol) with such a token: which of tied tokens is filtered depends on the
    sort (torch's is not stable). Where top-k's set is itself undecided, top-p runs on its largest and its
    smallest possible set, and every token between the two cuts that top-k may keep is undecided too
    (a token top-k cuts for certain stays decided, however close to top-p's cut)."""
    scores = raw.astype(np.float64) / settings.temperature
    undecided = np.zeros(scores.shape, dtype=bool)
    V = scores.shape[-1]
    candidates = [scores]  # the token sets top-p may see
    if 0 < settings.top_k < V:  # ambiguous only where the k-th and (k+1)-th largest are within rounding
        ranked = -np.sort(-scores, axis=-1)
        kth, after = ranked[:, settings.top_k - 1 : settings.top_k], ranked[:, settings.top_k : settings.top_k + 1]
        close = kth - after <= 2 * atol
        undecided |= close & ((np.abs(scores - kth) <= 2 * atol) | (np.abs(scores - after) <= 2 * atol))
        largest = np.where(scores < kth - 2 * atol, -np.inf, scores)  # undecided tokens in
        smallest = np.where(close & (scores <= kth + 2 * atol), -np.inf, largest)  # and out
        empty = ~np.isfinite(smallest).any(axis=-1, keepdims=True)  # every token of top-k's set undecided: no smaller set
        candidates = [largest, np.where(empty, largest, smallest)]
    if settings.top_p < 1.0:
        cuts = []
        for s in candidates:
            near_cut, first_kept = top_p_undecided(s, settings, atol)
            undecided |= near_cut
            cuts.append(first_kept)
        lo, hi = np.minimum.reduce(cuts), np.maximum.reduce(cuts)  # each set keeps its scores >= its cut
        between = (scores >= lo[:, None] - 2 * atol) & (scores < hi[:, None])  # kept by one set, cut by the other
        undecided |= between & np.isfinite(candidates[0])  # of the tokens top-k may keep (the others it cuts for certain)
    return undecided


def top_p_undecided(s: np.ndarray, settings: SamplingSettings, atol: float) -> tuple[np.ndarray, np.ndarray]:
    """Top-p on scores s [B, V] (float64, -inf filtered): the tokens near its cut (see undecided_tokens), and each
    row's smallest kept score."""
    undecided = np.zeros(s.shape, dtype=bool)
    order = np.argsort(s, axis=-1, kind="stable")
    sorted_s = np.take_along_axis(s, order, axis=-1)
    probs = np.exp(sorted_s - sorted_s[:, -1:])
    cum = np.cumsum(probs / probs.sum(-1, keepdims=True), axis=-1)
    near = np.abs(cum - (1 - settings.top_p)) <= SAMPLE_CUMULATIVE_TOL + 2 * atol * cum
    # the last token cut and the first kept, when tied: which of them is cut depends on the sort
    cut = np.minimum((cum <= 1 - settings.top_p)[:, :-1].sum(-1), s.shape[-1] - 1)  # the first kept, sorted
    last_cut = cut - 1
    for b in np.flatnonzero(last_cut >= 0):
        pair = sorted_s[b, last_cut[b] : last_cut[b] + 2]
        near[b, last_cut[b] : last_cut[b] + 2] |= pair[1] - pair[0] <= 2 * atol
    for b in np.flatnonzero(near.any(axis=-1)):  # and every token tied with those: ties sort in any order
        lo, hi = sorted_s[b, near[b]].min(), sorted_s[b, near[b]].max()
        undecided[b] |= (s[b] >= lo - 2 * atol) & (s[b] <= hi + 2 * atol)
    return undecided, np.take_along_axis(sorted_s, cut[:, None], axis=-1)[:, 0]


def compare_scores(name: str, got, ref: np.ndarray, raw: np.ndarray, settings: SamplingSettings, engine_dtype,
                   at_least: float = 0.0) -> Comparison:  # fmt: skip
    """One step's processed scores against transformers': shape, dtype, the filtered set, then the values;
    `at_least`: an absolute budget for the scores (the precision class's logits budget over the temperature)."""
    if not isinstance(got, np.ndarray):
        return _problem(name, got, f"expected a NumPy array, got {type(got).__name__}")
    if got.shape != ref.shape:
        return _problem(name, got, f"{got.dtype} {list(got.shape)} != reference {ref.dtype} {list(ref.shape)}")
    if got.dtype != ref.dtype:
        return _problem(name, got, f"{got.dtype} {list(got.shape)} != reference {ref.dtype} {list(ref.shape)} "
                                   "(transformers processes scores in float32)")  # fmt: skip
    if np.isnan(got).any() or np.isposinf(got).any():
        return _problem(name, got, f"NaN or +inf at {named_position(('batch', 'token'), np.argwhere(np.isnan(got) | np.isposinf(got))[0])}")
    kept = ~np.isneginf(ref)
    tol = SAMPLE_SCORES_TOL[np.dtype(engine_dtype)]
    atol = max(tol * float(np.abs(ref[kept]).max(initial=0.0)), at_least)  # the value tolerance, as compare() sets it
    differ = np.isneginf(got) != ~kept
    undecided = undecided_tokens(raw, settings, atol)
    if (differ & ~undecided).any():
        b, v = (int(i) for i in np.argwhere(differ & ~undecided)[0])
        return _problem(name, got, f"{int((differ & ~undecided).sum())} token(s) filtered differently, first row {b} "
                                   f"token {v}: got {float(got[b, v])!r}, transformers {float(ref[b, v])!r}")  # fmt: skip
    both = kept & ~np.isneginf(got)
    result = compare(name, np.where(both, got, 0).astype(got.dtype), np.where(both, ref, 0).astype(ref.dtype),
                     {ref.dtype: tol}, at_least=at_least)  # fmt: skip
    result.worst["undecided_tokens"] = int(differ.sum())  # filtered differently within rounding of a threshold
    return result


def compare_sampled(subject, case, engine_dtype, logits_budget: float = 0.0) -> list:
    """The subject's processed scores along transformers' sampled path, one comparison per step; `logits_budget`:
    the absolute budget of the case's logits in the subject's precision class (scores are logits / temperature)."""
    settings, ids = case.sampling
    got = subject.sample_scores(case, settings, ids)
    out = []
    for step in range(ids.shape[1] - case.input_ids.shape[1]):
        name = step_name(SCORES, step)
        if name not in got:
            out.append(_problem(name, None, "not returned by the subject"))
            continue
        try:
            scores = got[name]
        except DumpError as e:  # a step file of an engine verified through files
            out.append(_problem(name, None, str(e)))
            continue
        raw = case.array(step_name(LOGITS, step))
        out.append(compare_scores(name, scores, case.array(name), raw, settings, engine_dtype,
                                  logits_budget / settings.temperature))  # fmt: skip
    return out
