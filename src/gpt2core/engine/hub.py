"""Finding a model directory: a path, or a model name already present in the local Hugging Face cache.

Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

# The hub moved the original checkpoints under an organisation; either name finds the cached copy.
ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}


def hub_cache_dirs() -> list[Path]:
    """Where the Hugging Face hub keeps its cache, in the order huggingface_hub looks."""
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    dirs.append(Path(xdg) / "huggingface" / "hub")
    return dirs


def snapshot_dir(repo_dir: Path) -> Path | None:
    """The snapshot `refs/main` points at, or the only snapshot there is."""
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        snap = repo_dir / "snapshots" / ref.read_text().strip()
        if snap.is_dir():
            return snap
    snaps = sorted(p for p in (repo_dir / "snapshots").glob("*") if p.is_dir())
    return snaps[0] if len(snaps) == 1 else None


def resolve_model_dir(path_or_name: str | os.PathLike) -> Path:
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"model path {path} is a file; expected a directory with config.json and model.safetensors")
    name = str(path_or_name)
    if name.count("/") <= 1 and not name.startswith((".", "/", "~")):
        names = [name] + ([ALIASES[name]] if name in ALIASES else [])
        for cache in hub_cache_dirs():
            for n in names:
                snap = snapshot_dir(cache / ("models--" + n.replace("/", "--")))
                if snap is not None:
                    return snap
        looked = ", ".join(str(c) for c in hub_cache_dirs())
        raise CheckpointError(
            f"model directory not found: {name!r} is neither a directory nor a model in the local Hugging Face "
            f"cache ({looked}); gpt2core never downloads"
        )
    raise CheckpointError(f"model directory not found: {path}")
