"""gpt2core against transformers on the same weights, in one process: `python benchmarks/bench_vs_transformers.py`.

The same code as `gpt2core bench` (src/gpt2core/bench.py); the arguments are the same too.
Prints the figures, the ratios and which of issue 6's targets are met; nothing is asserted.
"""

import sys

from gpt2core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
