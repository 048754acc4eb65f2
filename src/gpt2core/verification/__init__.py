"""The verification framework: references captured from transformers, comparisons, verification modes and
the fault catalogue. It sees an engine only through the subject protocol (subject.py); the fault
catalogue, which patches gpt2core's own engine by nature, and the one adapter that makes that engine a
subject (numpy_subject.py) are the only modules that import the engine's computation.

  subject.py         the protocol: checkpoint names and layouts, capabilities, modes
  numpy_subject.py   gpt2core's NumPy engine as a subject
  dumps.py           engines in any language: a map of their .npy dumps, read as a subject
  external.py        subjects from --subject MODULE:FACTORY, --dumps and --subject-cmd
  model_dir.py       a model directory read once: config, tokenizer, weight hashes
  cases.py           the inputs references are captured on
  hf.py, capture.py  transformers' model, and every checkpoint of its own forward pass
  reference_set.py   reference sets on disk: .npy files and manifest.json, written and read with checks
  atomic.py          writes a later run sees whole or not at all; directories built once under a file lock
  tolerances.py      every tolerance, with its measurement
  compare.py         one checkpoint against its reference: shape, dtype, then values
  sampling.py        sampled generation: transformers' processed scores of each step against the subject's
  verify.py          the chained, isolated, cached, generate and sampled modes over a subject
  faults.py          the fault catalogue (fault_variants.py: the broken functions; stress.py: its model)
  precision/         engines at their own precision: classes, honest implementations (transformers at a
                     class's precision), measured budgets, the next-token distribution, declared deviations
  transformers_subject.py  transformers at a precision class, as a subject
"""
