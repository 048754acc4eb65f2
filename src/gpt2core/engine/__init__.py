"""The NumPy GPT-2 engine: config, weight loading, tokenizer, the forward pass with named checkpoints,
the KV cache and generation. It imports nothing from the rest of gpt2core.

  config.py     GPT2Config, read from and written as a Hugging Face config.json
  hub.py        finding a model directory (a path, or a name in the local Hugging Face cache)
  weights.py    reading model.safetensors into GPT2Params (params.py), never unpickling
  tokenizer.py  GPT-2's byte-level BPE
  ops.py        the building blocks: LayerNorm, GELU, softmax, Conv1D, heads, attention
  model.py      the forward pass, one function per GPT-2 stage, recording named checkpoints
  cache.py      the KV cache for incremental decoding
  generate.py   greedy and sampled generation
  loading.py    load(path) -> GPT2
"""

from .config import GPT2Config
from .loading import load
from .model import GPT2, checkpoint_names

__all__ = ["GPT2", "GPT2Config", "load", "checkpoint_names"]
