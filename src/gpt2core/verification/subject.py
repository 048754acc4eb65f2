"""The subject protocol: the one interface through which gpt2core's verification sees an engine.

A subject is any object that runs GPT-2 on a case and returns its checkpoints as NumPy arrays, named and
laid out as below (B batch, T the case's positions, S key positions, C width, H heads, D head size,
F the MLP width, V the vocabulary):

  embeddings                                   [B, T, C]     token + position embeddings
  h{i}.ln_1                                    [B, T, C]
  h{i}.q                                       [B, H, T, D]
  h{i}.k, h{i}.v                               [B, H, S, D]
  h{i}.attn_scores                             [B, H, T, S]  scaled, masked (the dtype's minimum), before softmax
  h{i}.attn_probs                              [B, H, T, S]
  h{i}.attn_heads                              [B, T, C]     probs @ v, heads merged, before c_proj
  h{i}.attn_out                                [B, T, C]     after c_proj
  h{i}.resid_mid                               [B, T, C]     x + attn_out, the input of ln_2
  h{i}.ln_2                                    [B, T, C]
  h{i}.mlp_fc                                  [B, T, F]     c_fc's output, before GELU
  h{i}.mlp_act                                 [B, T, F]     after GELU
  h{i}.mlp_out                                 [B, T, C]
  h{i}.out                                     [B, T, C]     the block's output
  ln_f                                         [B, T, C]
  logits                                       [B, T, V]

Required of every subject:
  name: str                                     how reports name it
  capabilities: frozenset[str]                  which optional methods it offers (see CAPABILITIES)
  checkpoints(case) -> {name: array}            the forward pass on case.input_ids [B, T] (int64), with
                                                case.attention_mask ([B, T] 0/1, left padding, or None)
                                                and case.position_ids [B, T]

Optional attributes: `provides` (the names it returns), `can_run(case)` (None, or why not), `masked_scores`
(MASKED_SCORES, or {"at_or_below": x}), `batch_layout` (BATCH_LAYOUTS: a right-padded subject returns each
row's tokens first, see gpt2core.verification.batch_layout), `precision` (a precision class, e.g. "float16",
"int8", "q8_0": gpt2core.verification.precision.classes; default the reference set's dtype), `deviations`
(known deviations, WAIVED within their tolerance: gpt2core.verification.precision.deviations), `notes`. Entries at padding
positions are never compared, whatever a subject returns there.

Optional, each declared in `capabilities` (never discovered by calling and catching an exception):
  "stages"    stage(name, case, ref) -> array   one checkpoint computed by the subject's own stage from the
                                                reference's inputs, ref(checkpoint name) -> array (the
                                                isolated mode: a failure points at one stage)
  "decode"    decode(case, split) -> iterator   prefill positions [0, split) with a fresh cache, then feed
                                                one position t = split .. T-1 at a time, yielding that
                                                step's checkpoints (T = 1, S = t + 1)
  "generate"  generate(case, max_new_tokens)    greedy continuation: ids [B, T + max_new_tokens]
              -> array
  "sample"    sample_scores(case, settings,     a sampled path replayed: path_ids [B, T + n] (the case's
              path_ids) -> {name: array}        ids, then transformers' sampled tokens, forced one at a
                                                time with a cache); per step N its processed scores
                                                `sample.scores@step=N` [B, V] float32: the last position's
                                                logits cast to float32, then temperature, top-k, top-p
                                                (settings.temperature, .top_k, .top_p; 0 and 1.0 switch a
                                                filter off), filtered tokens -inf (gpt2core.verification.sampling)
"""

from __future__ import annotations

from typing import Mapping, Protocol

import numpy as np

from .errors import SubjectError

# The per-layer checkpoints in the order a forward pass computes them, each with its axes.
LAYER_CHECKPOINTS = {
    "ln_1": ("batch", "position", "channel"),
    "q": ("batch", "head", "position", "dim"),
    "k": ("batch", "head", "key", "dim"),
    "v": ("batch", "head", "key", "dim"),
    "attn_scores": ("batch", "head", "query", "key"),
    "attn_probs": ("batch", "head", "query", "key"),
    "attn_heads": ("batch", "position", "channel"),
    "attn_out": ("batch", "position", "channel"),
    "resid_mid": ("batch", "position", "channel"),
    "ln_2": ("batch", "position", "channel"),
    "mlp_fc": ("batch", "position", "channel"),
    "mlp_act": ("batch", "position", "channel"),
    "mlp_out": ("batch", "position", "channel"),
    "out": ("batch", "position", "channel"),
}
MODEL_CHECKPOINTS = {
    "embeddings": ("batch", "position", "channel"),
    "ln_f": ("batch", "position", "channel"),
    "logits": ("batch", "position", "token"),
}

# capability -> (the verification mode it enables, the method it requires); "chained" needs only `checkpoints`
CAPABILITIES = {"stages": ("isolated", "stage"), "decode": ("cached", "decode"), "generate": ("generate", "generate"),
                "sample": ("sampled", "sample_scores")}  # fmt: skip
MODES = ("chained", "isolated", "cached", "generate", "sampled")

# How an engine writes masked attention scores (a subject's `masked_scores`, a dump map's): the dtype's minimum
# (as transformers), -inf, not computed at all, or {"at_or_below": x}: any value at or below x (-1e10, -65504)
MASKED_SCORES = ("min", "-inf", "not computed")
# How an engine lays out a batch (a subject's `batch_layout`, a dump map's): see gpt2core.verification.batch_layout
BATCH_LAYOUTS = ("left-padded", "right-padded", "packed")


def masked_scores_problem(value) -> str | None:
    """Why `value` is not a masked-score convention (None: it is one)."""
    if isinstance(value, str) and value in MASKED_SCORES:
        return None
    if isinstance(value, dict) and set(value) == {"at_or_below"}:
        x = value["at_or_below"]
        if isinstance(x, (int, float)) and not isinstance(x, bool) and x < 0:
            return None
        return f"masked_scores {{'at_or_below': {x!r}}}: the threshold must be a negative number, e.g. -1e9"
    return (f"masked_scores {value!r}; expected one of {', '.join(map(repr, MASKED_SCORES))} "
            "or {'at_or_below': x} (x a negative number: any score at or below it counts as masked)")  # fmt: skip


def checkpoint_names(n_layer: int) -> list[str]:
    """Every canonical checkpoint name of an n_layer GPT-2, in the order the forward pass computes them."""
    names = ["embeddings"]
    for i in range(n_layer):
        names += [f"h{i}.{kind}" for kind in LAYER_CHECKPOINTS]
    return names + ["ln_f", "logits"]


def kind_of(name: str) -> str:
    """'h3.attn_scores' -> 'attn_scores'; 'logits' -> 'logits'; a step suffix ('@t=5,b=0') is ignored."""
    return name.split("@")[0].rsplit(".", 1)[-1]


def axes_of(name: str) -> tuple[str, ...]:
    """Axis names of checkpoint `name` (e.g. 'h3.attn_scores' -> batch, head, query, key)."""
    if name.startswith("sample."):
        return ("batch", "token")  # sample.scores@step=N, sample.logits@step=N: [B, V]
    kind = kind_of(name)
    return LAYER_CHECKPOINTS.get(kind) or MODEL_CHECKPOINTS.get(kind, ("batch", "position", "channel"))


class Case(Protocol):
    """What a subject is given: one input of a reference set."""

    name: str
    input_ids: np.ndarray  # [B, T] int64
    attention_mask: np.ndarray | None  # [B, T] 0/1, padding on the left; None: every position is a token
    position_ids: np.ndarray  # [B, T] int64


class Subject(Protocol):
    """An engine under verification: the required part (the optional methods are in the module docstring)."""

    name: str
    capabilities: frozenset[str]

    def checkpoints(self, case: Case) -> Mapping[str, np.ndarray]: ...


def check_subject(subject) -> None:
    """Refuse an object that is not a subject, or declares a capability without its method."""
    missing = [a for a in ("name", "capabilities", "checkpoints") if not hasattr(subject, a)]
    if missing:
        raise SubjectError(f"{subject!r} is not a subject: it lacks {', '.join(missing)} (see gpt2core.verification.subject)")
    unknown = set(subject.capabilities) - set(CAPABILITIES)
    if unknown:
        raise SubjectError(f"subject {subject.name}: unknown capabilities {sorted(unknown)}; known: {', '.join(CAPABILITIES)}")
    for capability in subject.capabilities:
        method = CAPABILITIES[capability][1]
        if not callable(getattr(subject, method, None)):
            raise SubjectError(f"subject {subject.name} declares {capability!r} but has no {method}() method")
    problem = masked_scores_problem(getattr(subject, "masked_scores", "min"))
    if problem is not None:
        raise SubjectError(f"subject {subject.name}: {problem}")
    layout = getattr(subject, "batch_layout", "left-padded")
    if layout not in BATCH_LAYOUTS:
        raise SubjectError(f"subject {subject.name}: batch_layout {layout!r}; expected one of {', '.join(BATCH_LAYOUTS)}")
    from .precision.classes import precision_class
    from .precision.deviations import parse_deviations

    try:
        if hasattr(subject, "precision"):
            precision_class(subject.precision)
        parse_deviations(getattr(subject, "deviations", ()), f"subject {subject.name}")
    except ValueError as e:
        raise SubjectError(f"subject {subject.name}: {e}") from None


def modes_of(subject) -> dict[str, bool]:
    """mode -> whether the subject offers it (chained always)."""
    return {"chained": True, **{mode: capability in subject.capabilities for capability, (mode, _) in CAPABILITIES.items()}}
