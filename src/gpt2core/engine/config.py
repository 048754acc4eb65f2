"""GPT-2 hyper-parameters, read from (and written as) a Hugging Face `config.json`."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from .errors import ConfigError

# Both names denote the tanh approximation of GELU that GPT-2 was trained with.
SUPPORTED_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")
# Hugging Face settings with the value GPT-2 uses: any other value changes the computation and is refused.
GPT2_SETTINGS = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False}

# The fields of GPT-2's published config.json (openai-community/gpt2) that are not its shape, and n_ctx, which
# transformers 5 no longer writes but the ecosystem's converters read (llama.cpp's convert_hf_to_gguf.py:
# KeyError 'n_ctx' without it). Written into every model directory gpt2core makes (see `published_config`).
GPT2_PUBLISHED_FIELDS = {
    "activation_function": "gelu_new", "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
    "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
    "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
    "summary_type": "cls_index", "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
}  # fmt: skip


def published_config(d: dict) -> dict:
    """A config.json dict completed with GPT-2's published fields where it lacks them, and n_ctx = n_positions."""
    return {**GPT2_PUBLISHED_FIELDS, **d, "n_ctx": d.get("n_ctx", d.get("n_positions", 1024))}


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width; None means 4 * n_embd
    layer_norm_epsilon: float = 1e-5
    activation_function: str = "gelu_new"
    initializer_range: float = 0.02
    bos_token_id: int = 50256
    eos_token_id: int = 50256
    tie_word_embeddings: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        if self.n_inner is not None and (type(self.n_inner) is not int or self.n_inner <= 0):
            raise ConfigError(f"config field 'n_inner' must be null or a positive integer, got {self.n_inner!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"config field 'n_embd' ({self.n_embd}) must be divisible by 'n_head' ({self.n_head})"
            )
        eps = self.layer_norm_epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps > 0):
            raise ConfigError(f"config field 'layer_norm_epsilon' must be a positive finite number, got {eps!r}")
        if self.activation_function not in SUPPORTED_ACTIVATIONS:
            raise ConfigError(
                f"unsupported activation_function {self.activation_function!r}: gpt2core implements GPT-2's "
                f"tanh GELU only ({', '.join(SUPPORTED_ACTIVATIONS)})"
            )
        for name in ("bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < self.vocab_size:
                raise ConfigError(f"config field {name!r} must be a token id in [0, {self.vocab_size}), got {value!r}")
        if type(self.tie_word_embeddings) is not bool:
            raise ConfigError(f"config field 'tie_word_embeddings' must be a boolean, got {self.tie_word_embeddings!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_width(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> GPT2Config:
        """Build from a Hugging Face config dict, refusing settings that change GPT-2's computation."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(d).__name__}")
        model_type = d.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise ConfigError(f"{source}: model_type is {model_type!r}, gpt2core loads only 'gpt2'")
        for field, gpt2_value in GPT2_SETTINGS.items():
            if field in d and d[field] != gpt2_value:
                raise ConfigError(
                    f"{source}: unsupported setting {field}={d[field]!r} (gpt2core supports only {gpt2_value!r})"
                )
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [f for f in ("vocab_size", "n_embd", "n_layer", "n_head") if f not in d]
        if missing:
            raise ConfigError(f"{source}: missing required field(s) {', '.join(missing)}")
        # null means "the default" in Hugging Face configs; n_inner's default is itself null
        kwargs = {k: v for k, v in d.items() if k in known and v is not None}
        if "n_positions" not in d and "n_ctx" in d:  # very old GPT-2 configs
            kwargs["n_positions"] = d["n_ctx"]
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> GPT2Config:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            d = json.loads(path.read_bytes())  # bytes: json detects UTF-8/16/32, whatever the locale
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=str(path))

    def to_dict(self) -> dict:
        """The Hugging Face `config.json` content for this configuration: the fields, the model type and
        the settings `from_dict` checks (training-only keys such as dropout keep transformers' defaults)."""
        return {**dataclasses.asdict(self), "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], **GPT2_SETTINGS}
