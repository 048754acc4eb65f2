"""llama.cpp at every checkpoint, each GGUF type judged in its precision class and in float32's: the table in
README.md's llama.cpp worked case.

    python benchmarks/llama_cpp_classes.py [MODEL_DIR]     (default: the built-in 124M-shape model)

For each run (GGUF type, KV-cache type, map) examples/llama-cpp/dump.py converts the model (llama.cpp's own
converter and quantizer, kept in $GPT2CORE_HOME/llama.cpp) and dumps every tensor of the float32 reference
set's cases; gpt2core then verifies the dumps with the run's map (its class) and with map-f32.json (class
float32). Prints per run: the verdict in class, the worst margin and where, how many checkpoints were waived,
KL mean and top-1 agreement against the honest implementation's, and the first divergence as float32.
Needs the llama-cpp extra.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from gpt2core.cli import main as gpt2core

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llama-cpp"
RUNS = [  # GGUF type, KV cache, map (its class)
    ("f32", "f32", "map-f32.json"),
    ("f32", "f32", "map-f32-gelu-waived.json"),
    ("f32", "f16", "map-f32-f16kv.json"),
    ("f16", "f16", "map-f16.json"),
    ("q8_0", "f16", "map-q8_0.json"),
    ("q4_0", "f16", "map-q4_0.json"),
]


def verify(model: str, refs: str, dumps: Path, map_name: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        gpt2core(["verify", "--model", model, "--references", refs, "--dtype", "float32", "--dumps", str(dumps),
                  "--map", str(EXAMPLE / map_name), "--json"])  # fmt: skip
    return json.loads(out.getvalue())["runs"][0]


def main() -> int:
    model = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as tmp:
        refs = Path(tmp) / "refs"
        gpt2core(["references", *(["--model", model] if model else []), "--dtype", "float32", "--out", str(refs)])
        model = model or json.loads((refs / "manifest.json").read_text())["model"]["path"]
        print(f"| GGUF | KV cache | map (class) | verdict | worst margin | waived | KL mean (honest) | top-1 (honest) | as float32: first divergence |")
        print("|---|---|---|---|---|---|---|---|---|")
        for gguf_type, kv, map_name in RUNS:
            dumps = Path(tmp) / f"{gguf_type}-{kv}"
            subprocess.run([sys.executable, str(EXAMPLE / "dump.py"), model, str(refs), str(dumps), "--type", gguf_type,
                            "--kv-cache", kv], check=True)  # fmt: skip
            run, f32 = verify(model, str(refs), dumps, map_name), verify(model, str(refs), dumps, "map-f32.json")
            d, honest = run["distribution"], run["distribution"]["budget"]["honest"]
            first = f32["first_divergence"]
            where = f"{run['worst_margin_at']['name']}" if run["worst_margin_at"] else "-"
            print(f"| {gguf_type} | {kv} | {map_name} ({run['precision']}) | {run['verdict']} | {run['worst_margin']:.3g} "
                  f"({where}) | {run['checkpoints_waived']} | {d['kl_mean']:.2g} ({honest['kl_mean']:.2g}) | "
                  f"{d['top1_agreement']:.3f} ({honest['top1_agreement']:.3f}) | "
                  f"{first['name'] if first else 'none'} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
