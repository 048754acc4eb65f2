"""gpt2core's conformance suite: the tests gpt2core runs on its own engine, for any engine.

    pip install "gpt2core[test]"
    pytest --pyargs gpt2core.conformance --gpt2core-subject=my_engine.adapter:make_subject

  plugin.py            the pytest plugin (options, markers, fixtures, the count of skips for a capability)
  target.py            the engine under test, named by the options
  session.py           one session's built models, reference sets, subjects and parity comparisons
  builtin.py           the built-in models (tiny, stress, a user's) and reference sets cached by content
  strategies.py        hypothesis strategies: drawn configs, weights, inputs
  drawn.py             drawn models written by transformers, with their reference sets
  examples.py          one drawn example run on the engine; a failure kept with its reproduction command
  invariants.py        the engine compared with itself
  test_parity.py       every checkpoint of the built-in cases, in every mode the engine offers
  test_differential.py drawn models against transformers
  test_invariants.py   causality, batch and padding independence, cache equivalence
"""
