"""Engines at their own precision: what a precision class is, how an honest implementation at that precision
is run, the budgets measured from it, and the judgements made with them.

  classes.py       the precision classes (float64 ... q4_0): reference dtype, dump dtypes, floor, emulation
  honest.py        transformers itself at a class's precision (needs torch): the honest implementation, with
                   each format's rounding (float16, int8 per row or channel, GGUF q8_0 / q4_0 blocks)
  budgets.py       per checkpoint and case, k times the honest implementation's error; stored with a set
  distribution.py  the next-token distribution at the logits: KL divergence, top-1 agreement, NLL ratio
  deviations.py    known deviations an engine declares: WAIVED, never a plain PASS
"""
