"""Finding a model by name in the local Hugging Face cache, with huggingface_hub itself as the reference.

huggingface_hub computes its cache directory from the environment at import, so each setting is asked of a
fresh interpreter; gpt2core.hub must look first where huggingface_hub would store the model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpt2core.errors import CheckpointError
from gpt2core.engine.hub import hub_cache_dirs, resolve_model_dir, snapshot_dir

ENV_KEYS = ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME")


def huggingface_hub_cache(env: dict) -> Path:
    clean = {k: v for k, v in os.environ.items() if k not in ENV_KEYS and not k.startswith("HUGGINGFACE_")}
    out = subprocess.run([sys.executable, "-c", "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)"],
                         env={**clean, **env}, capture_output=True, text=True, check=True)  # fmt: skip
    return Path(out.stdout.strip())


@pytest.mark.parametrize("settings", [
    {"HF_HUB_CACHE": "{t}/hubcache", "HF_HOME": "{t}/hfhome", "XDG_CACHE_HOME": "{t}/xdg"},
    {"HF_HOME": "{t}/hfhome", "XDG_CACHE_HOME": "{t}/xdg"},
    {"XDG_CACHE_HOME": "{t}/xdg"},
    {},
], ids=["HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"])  # fmt: skip
def test_first_cache_dir_is_huggingface_hubs(settings, tmp_path, monkeypatch):
    env = {"HOME": str(tmp_path / "home"), **{k: v.format(t=tmp_path) for k, v in settings.items()}}
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    dirs = hub_cache_dirs()
    assert dirs[0] == huggingface_hub_cache(env), f"{settings}: gpt2core looks in {dirs}"
    assert dirs[-1] == Path(env.get("XDG_CACHE_HOME", f"{tmp_path}/home/.cache")) / "huggingface" / "hub"
    assert len(dirs) == 1 + sum(k in settings for k in ("HF_HUB_CACHE", "HF_HOME"))


def make_repo(root: Path, name: str, snapshots: list[str], main: str | None) -> Path:
    repo = root / ("models--" + name.replace("/", "--"))
    for s in snapshots:
        (repo / "snapshots" / s).mkdir(parents=True)
    if main is not None:
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(main + "\n")
    return repo


def test_snapshot_is_refs_main_else_the_only_one(tmp_path):
    repo = make_repo(tmp_path, "a/b", ["s1", "s2"], main="s2")
    assert snapshot_dir(repo) == repo / "snapshots" / "s2"
    (repo / "refs" / "main").write_text("gone")  # refs/main names a snapshot that is not there
    assert snapshot_dir(repo) is None  # two candidates: never guess
    only = make_repo(tmp_path, "c/d", ["s1"], main=None)
    assert snapshot_dir(only) == only / "snapshots" / "s1"
    (only / "snapshots" / "stray-file").write_text("")  # files are not snapshots
    assert snapshot_dir(only) == only / "snapshots" / "s1"
    assert snapshot_dir(make_repo(tmp_path, "e/f", [], main=None)) is None


def test_names_resolve_through_each_cache_dir_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    xdg = make_repo(tmp_path / "home" / ".cache" / "huggingface" / "hub", "openai-community/gpt2", ["x"], "x")
    assert resolve_model_dir("gpt2") == xdg / "snapshots" / "x"  # the alias of the organisation name
    home = make_repo(tmp_path / "hfhome" / "hub", "gpt2", ["h"], "h")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert resolve_model_dir("gpt2") == home / "snapshots" / "h"  # HF_HOME comes before the default
    assert resolve_model_dir("openai-community/gpt2") == xdg / "snapshots" / "x"
    with pytest.raises(CheckpointError, match=r"'org/missing' is neither a directory nor a model .*hfhome.*never downloads"):
        resolve_model_dir("org/missing")
    with pytest.raises(CheckpointError, match=r"model directory not found: .*a/b/c$"):
        resolve_model_dir(str(tmp_path / "a" / "b" / "c"))
    (tmp_path / "weights.bin").write_text("")
    with pytest.raises(CheckpointError, match="is a file; expected a directory"):
        resolve_model_dir(tmp_path / "weights.bin")


@pytest.mark.parametrize("given, resolved", [
    ("a/b/c", "a/b/c"),  # two slashes: a path, never a hub name (hub names are `name` or `org/name`)
    ("./absent", "absent"),
    ("/absent", "/absent"),
    ("~/absent", "{home}/absent"),
])  # fmt: skip
def test_paths_are_not_looked_up_as_hub_names(given, resolved, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = "model directory not found: " + resolved.format(home=tmp_path / "home")
    with pytest.raises(CheckpointError, match=f"^{re.escape(expected)}$"):
        resolve_model_dir(given)


def test_missing_name_lists_every_cache_dir_looked_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    looked = f"{tmp_path}/hfhome/hub, {tmp_path}/home/.cache/huggingface/hub"
    with pytest.raises(CheckpointError, match=re.escape(f"in the local Hugging Face cache ({looked}); gpt2core never downloads")):
        resolve_model_dir("org/missing")
