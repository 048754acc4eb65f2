"""ONNX Runtime as an engine verified through dumps: transformers' GPT-2 exported with `torch.onnx.export`,
every intermediate tensor a module boundary exposes made a graph output, run by the `onnxruntime` wheel.

    python dump.py MODEL_DIR REFERENCES_DIR DUMPS_DIR [--optimization none|all]

    gpt2core verify --model DIR --dtype float32 --map map.json \
        --subject-cmd "python dump.py {model} {references} {dumps} --optimization all"

For each case of the reference set (cases.txt; <case>/input_ids.npy, attention_mask.npy, position_ids.npy)
it runs the graph with the case's left-padded batch and mask and writes each output as DUMPS_DIR/<case>/<name>.npy
in ONNX Runtime's own layout: c_attn's fused q|k|v [B, T, 3C], attention probabilities [B, H, T, T], the rest
[B, T, C]. map.json declares it. The attention scores are computed inside transformers' attention function,
not at a module boundary, so they are not exposed (not provided). The exported graph is kept in
$GPT2CORE_HOME/onnxruntime/, one per weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

KINDS = ("ln_1", "c_attn", "attn_probs", "attn_heads", "attn_out", "resid_mid", "ln_2", "mlp_fc", "mlp_act", "mlp_out", "out")
INPUTS = ("input_ids", "attention_mask", "position_ids")


def output_names(n_layer: int) -> list[str]:
    return ["embeddings", *(f"h{i}.{k}" for i in range(n_layer) for k in KINDS), "ln_f", "logits"]


def export(model_dir: Path, out: Path) -> None:
    """transformers' GPT2LMHeadModel (eager attention, float32) -> an ONNX graph whose outputs are output_names()."""
    import torch
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
    names = output_names(model.config.n_layer)

    class Intermediates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids):
            rec, hooks = {}, []
            t = self.model.transformer

            def output(name):
                return lambda module, args, result: rec.__setitem__(name, result)

            def first_input(name):
                return lambda module, args: rec.__setitem__(name, args[0])

            hooks.append(t.drop.register_forward_hook(output("embeddings")))
            for i, block in enumerate(t.h):
                hooks += [
                    block.ln_1.register_forward_hook(output(f"h{i}.ln_1")),
                    block.attn.c_attn.register_forward_hook(output(f"h{i}.c_attn")),
                    block.attn.c_proj.register_forward_pre_hook(first_input(f"h{i}.attn_heads")),
                    block.attn.c_proj.register_forward_hook(output(f"h{i}.attn_out")),
                    block.ln_2.register_forward_pre_hook(first_input(f"h{i}.resid_mid")),
                    block.ln_2.register_forward_hook(output(f"h{i}.ln_2")),
                    block.mlp.c_fc.register_forward_hook(output(f"h{i}.mlp_fc")),
                    block.mlp.act.register_forward_hook(output(f"h{i}.mlp_act")),
                    block.mlp.register_forward_hook(output(f"h{i}.mlp_out")),
                    block.register_forward_hook(output(f"h{i}.out")),
                ]
            hooks.append(t.ln_f.register_forward_hook(output("ln_f")))
            try:
                result = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                    output_attentions=True, use_cache=False)  # fmt: skip
            finally:
                for hook in hooks:
                    hook.remove()
            for i, probs in enumerate(result.attentions):
                rec[f"h{i}.attn_probs"] = probs
            rec["logits"] = result.logits
            return tuple(rec[n] for n in names)

    wrapper = Intermediates().eval()
    example = (torch.tensor([[0, 15496, 13], [40, 1101, 257]]), torch.tensor([[0, 1, 1], [1, 1, 1]]),
               torch.tensor([[1, 0, 1], [0, 1, 2]]))  # fmt: skip
    axes = {"b": "batch", "t": "positions"}
    torch.onnx.export(wrapper, example, str(out), dynamo=False, input_names=list(INPUTS), output_names=names,
                      dynamic_axes={n: {0: axes["b"], 1: axes["t"]} for n in INPUTS})  # fmt: skip


def exported(model_dir: Path) -> Path:
    """The ONNX graph of model_dir, exported once per weights into $GPT2CORE_HOME/onnxruntime."""
    from gpt2core.verification.atomic import atomic_path, build_once
    from gpt2core.verification.model_dir import gpt2core_home, read_model_dir

    md = read_model_dir(model_dir)
    key = hashlib.sha256(json.dumps(md.weights_sha256, sort_keys=True).encode()).hexdigest()[:16]

    def build(path: Path) -> None:
        with atomic_path(path) as tmp:
            export(md.path, tmp)

    return build_once(gpt2core_home() / "onnxruntime" / f"{key}.onnx", Path.is_file, build)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("references", type=Path)
    parser.add_argument("dumps", type=Path)
    parser.add_argument("--optimization", choices=("none", "all"), default="all",
                        help="ONNX Runtime's graph optimisations: ORT_DISABLE_ALL or ORT_ENABLE_ALL")  # fmt: skip
    args = parser.parse_args(argv)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {"none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[args.optimization]  # fmt: skip
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(exported(args.model)), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for case in (args.references / "cases.txt").read_text().split():
        feed = {n: np.load(args.references / case / f"{n}.npy", allow_pickle=False) for n in INPUTS}
        out = args.dumps / case
        out.mkdir(parents=True, exist_ok=True)
        for name, array in zip(names, session.run(None, feed)):
            np.save(out / f"{name}.npy", array)
    return 0


if __name__ == "__main__":
    sys.exit(main())
