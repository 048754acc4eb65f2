"""Subjects and dumps laid out as deployed engines lay them out, made from gpt2core's own engine (whose numbers
are known to be right): right-padded or packed rows, a KV-cache window, garbage at padding positions."""

from __future__ import annotations

import numpy as np

from gpt2core.verification.batch_layout import TOKEN_AXES, token_mask
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.subject import axes_of


def engine_layout(name: str, array: np.ndarray, tokens: np.ndarray, layout: str, window: int = 0, garbage=np.nan):
    """A canonical (left-padded) checkpoint as an engine with `layout` writes it: each row's tokens moved to
    the start of the row (right-padded) or one after another on one axis without the batch (packed), `window`
    extra keys on a key axis, and `garbage` wherever the model defines nothing."""
    axes = axes_of(name)[1:]
    token_axes = [i for i, a in enumerate(axes) if a in TOKEN_AXES]
    lengths = tokens.sum(axis=1)
    T = tokens.shape[1]
    rows = []
    for b, length in enumerate(lengths):
        row = array[b]
        for i in token_axes:
            row = np.take(row, np.arange(T - length, T), axis=i)
        rows.append(row)
    width = {"left-padded": T, "right-padded": T, "packed": int(lengths.sum())}[layout]
    shape = [width + (window if axes[i] == "key" else 0) if i in token_axes else n for i, n in enumerate(array.shape[1:])]
    out = np.full(([] if layout == "packed" else [len(lengths)]) + shape, garbage, dtype=array.dtype)
    start = 0
    for b, (row, length) in enumerate(zip(rows, lengths)):
        offset = {"left-padded": T - length, "right-padded": 0, "packed": start}[layout]
        where = tuple(slice(offset, offset + length) if i in token_axes else slice(None) for i in range(len(axes)))
        (out if layout == "packed" else out[b])[where] = row
        start += length
    return out


class RightPadded:
    """gpt2core's engine as a subject that lays its batch out right-padded (as CTranslate2 does): checkpoints
    and generated ids, each row's tokens first; garbage after them."""

    capabilities = frozenset({"generate"})
    batch_layout = "right-padded"
    name = "right-padded"

    def __init__(self, model, spoil=False):
        self.inner, self.spoil = NumpySubject(model), spoil

    def checkpoints(self, case):
        tokens = token_mask(case)
        return {n: engine_layout(n, a, tokens, "right-padded", garbage=np.nan) for n, a in self.inner.checkpoints(case).items()}

    def generate(self, case, n):
        ids = self.inner.generate(case, n)
        tokens = np.concatenate([token_mask(case), np.ones((ids.shape[0], ids.shape[1] - case.input_ids.shape[1]), bool)], 1)
        out = np.full_like(ids, 7)  # any padding id
        for b in range(ids.shape[0]):
            row = ids[b][tokens[b]]
            out[b, : len(row)] = row
        if self.spoil and ids.shape[0] > 1:
            out[1, tokens[1].sum() - 1] += 1  # the last new token of row 1
        return out


def make_right_padded(model_dir, dtype) -> RightPadded:
    """The subject factory for --gpt2core-subject support.layouts:make_right_padded."""
    import gpt2core

    return RightPadded(gpt2core.load(model_dir.path, dtype=np.dtype(dtype), config=model_dir.config))


class Limited:
    """gpt2core's engine as a subject that cannot run some inputs (its `can_run` says which)."""

    capabilities = frozenset()

    def __init__(self, model, refuse, name):
        self.inner, self.refuse, self.name = NumpySubject(model), refuse, name

    def can_run(self, case):
        return self.refuse(case)

    def checkpoints(self, case):
        return self.inner.checkpoints(case)


def unpadded(case):
    if case.input_ids.shape[0] > 1:
        return "one row at a time"
    if case.attention_mask is not None and not case.attention_mask.all():
        return "no padding"
    return None


def make_unpadded(model_dir, dtype) -> Limited:
    """A subject that runs one row at a time and no padding (--gpt2core-subject support.layouts:make_unpadded)."""
    import gpt2core

    return Limited(gpt2core.load(model_dir.path, dtype=np.dtype(dtype), config=model_dir.config), unpadded, "unpadded")


def make_short_only(model_dir, dtype) -> Limited:
    """A subject that refuses inputs longer than 4 tokens: the drawn tests cannot know it in advance."""
    import gpt2core

    model = gpt2core.load(model_dir.path, dtype=np.dtype(dtype), config=model_dir.config)
    return Limited(model, lambda case: "longer than 4 tokens" if case.input_ids.shape[1] > 4 else None, "short only")
