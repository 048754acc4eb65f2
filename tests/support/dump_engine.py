"""An engine in its own layout, for the tests of dumps and of the command contract: gpt2core's engine rearranged
the way a from-scratch engine lays its checkpoints out (fused QKV, heads last, no batch axis, logits padded to a
multiple of 64, masked scores -inf), with the map (MAP) that declares that layout."""

from __future__ import annotations

import numpy as np

from support.verdict_subjects import Altered

from gpt2core.verification.dumps import FORMAT

PER_LAYER = ("ln_1", "attn_scores", "attn_probs", "attn_heads", "attn_out", "resid_mid", "ln_2", "mlp_fc", "mlp_act",
             "mlp_out", "out")  # fmt: skip
MAP = {
    "format": FORMAT, "engine": "rearranged numpy", "dtype": "float64", "runs": {"batch": False, "padding": False},
    "masked_scores": "-inf",
    "checkpoints": {
        "embeddings": {"file": "{case}/embeddings.npy", "layout": "t c"},
        **{f"h{{i}}.{k}": {"file": f"{{case}}/layer{{i}}/{k}.npy", "layout": "h t s" if k.startswith("attn_") and k[5:] in ("scores", "probs") else "t c"}
           for k in PER_LAYER},
        **{f"h{{i}}.{k}": {"file": "{case}/layer{i}/qkv.npy", "layout": "t (three h d)", "select": {"three": n}}
           for n, k in enumerate(("q", "k", "v"))},
        "ln_f": {"file": "{case}/ln_f.npy", "layout": "t c"},
        "logits": {"file": "{case}/logits.npy", "layout": "t v", "vocab_padded": True},
    },
}  # fmt: skip


def write_dumps(model, refs, out, broken=None):
    """The engine's checkpoints of every one-row case, laid out as MAP says (the qkv of layer 0 broken on
    request by swapping k and v)."""
    for case in refs.cases:
        if case.input_ids.shape[0] > 1:
            continue
        rec = {}
        model.forward(case.input_ids, checkpoints=rec)
        d = out / case.name
        for i in range(model.config.n_layer):
            (d / f"layer{i}").mkdir(parents=True, exist_ok=True)
            for k in PER_LAYER:
                a = rec[f"h{i}.{k}"][0]
                if k == "attn_scores":
                    a = np.where(a == np.finfo(a.dtype).min, -np.inf, a)
                np.save(d / f"layer{i}" / f"{k}.npy", a)
            q, k_, v = (rec[f"h{i}.{n}"][0].transpose(1, 0, 2).reshape(case.input_ids.shape[1], -1) for n in "qkv")
            if broken == "kv_swapped" and i == 0:
                k_, v = v, k_
            np.save(d / f"layer{i}" / "qkv.npy", np.concatenate([q, k_, v], axis=-1))
        np.save(d / "embeddings.npy", rec["embeddings"][0])
        np.save(d / "ln_f.npy", rec["ln_f"][0])
        logits = rec["logits"][0]
        V = logits.shape[-1]
        padded = np.zeros((logits.shape[0], -(-V // 64) * 64), logits.dtype)
        padded[:, :V] = logits
        np.save(d / "logits.npy", padded)


def every_mode_map(dtype: str = "float64") -> dict:
    """The map of an engine that writes every mode in gpt2core's own layout (each checkpoint at its default file,
    {case}/<name>.npy, masked scores as the dtype's minimum), a batch of rows of different lengths left-padded."""
    return {"format": FORMAT, "engine": "numpy, every mode through files", "dtype": dtype, "masked_scores": "min",
            "runs": {"batch": True, "padding": True}, "modes": ["chained", "isolated", "cached", "generate", "sampled"],
            "checkpoints": {name: {} for name in ("embeddings", *(f"h{{i}}.{k}" for k in (*PER_LAYER, "q", "k", "v")), "ln_f", "logits")}}  # fmt: skip


class DumpingSubject(Altered):
    """A Python subject (gpt2core's engine) that writes every answer it gives verify as the file an engine command
    writes for it (dumps.py, "Modes through files"): run verify on it once, and `out` holds a complete dump of
    every mode, in gpt2core's own layout (every_mode_map)."""

    def __init__(self, inner, out):
        super().__init__(inner)
        self.name, self.out = "gpt2core, dumping every answer", out

    def save(self, path, array):
        path = self.out / path
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray(array))

    def checkpoints(self, case):
        rec = self.inner.checkpoints(case)
        for name, array in rec.items():
            self.save(f"{case.name}/{name}.npy", array)
        return rec

    def stage(self, name, case, ref):
        array = self.inner.stage(name, case, ref)
        self.save(f"{case.name}/stage/{name}.npy", array)
        return array

    def decode(self, case, split):
        for t, step in enumerate(self.inner.decode(case, split), start=split):
            for name, array in step.items():
                self.save(f"{case.name}/decode/t{t}/{name}.npy", array)
            yield step

    def generate(self, case, max_new_tokens):
        ids = self.inner.generate(case, max_new_tokens)
        self.save(f"{case.name}/generated_ids.npy", ids)
        return ids

    def sample_scores(self, case, settings, ids):
        scores = self.inner.sample_scores(case, settings, ids)
        for name, array in scores.items():
            self.save(f"{case.name}/{name}.npy", array)
        return scores
