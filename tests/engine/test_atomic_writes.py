"""Interrupted writes leave nothing a later run accepts: reference sets, model directories and reports are
written under a temporary name and renamed whole (gpt2core.verification.atomic)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpt2core.verification import atomic


# `gpt2core references` as its console script runs it, except that after its first case is written it says so
# (a marker file) and waits: the test interrupts it there, inside the write, at a point the test controls
# (interrupting at a moment the test only guessed raced with the writer on a loaded machine). It waits in short
# naps, not one long sleep: CPython's time.sleep looks for a pending signal only when its system call is
# interrupted, so a SIGINT that arrives after the last check and before the call starts is seen when the sleep
# ends (CI once waited 60 s for a 600 s sleep)
PAUSED_REFERENCES = """
import signal, sys, time
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises here even where a background job's parent ignores it
from gpt2core.verification import reference_set
marker, argv = Path(sys.argv[1]), sys.argv[2:]
real = reference_set.write_case
def write_case_then_wait(*args, **kwargs):
    entry = real(*args, **kwargs)
    marker.write_text("one case written")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # short naps: a Ctrl-C landing just before a nap begins waits out that nap
        time.sleep(0.05)
    return entry
reference_set.write_case = write_case_then_wait
from gpt2core.cli import main
sys.exit(main(argv))
"""


def start_references(model_dir: Path, out: Path, home: Path, marker: Path) -> subprocess.Popen:
    env = {**os.environ, "GPT2CORE_HOME": str(home)}
    argv = [sys.executable, "-c", PAUSED_REFERENCES, str(marker), "references", "--model", str(model_dir), "--out", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_partial_case(out: Path, proc: subprocess.Popen, marker: Path) -> Path:
    """The temporary set, once its first case is written and the writer waits inside the write."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not marker.exists():
        assert proc.poll() is None, f"references ended before it could be interrupted: {proc.communicate()}"
        time.sleep(0.01)
    assert marker.exists(), "references wrote no case within 300 s"
    (partial,) = out.parent.glob(f".{out.name}.partial-*")
    assert any(partial.glob("*/*.npy")), f"{partial} holds no case's files"
    return partial


def verify_refuses(refs: Path, model_dir: Path, home: Path) -> str:
    env = {**os.environ, "GPT2CORE_HOME": str(home)}
    r = subprocess.run([sys.executable, "-m", "gpt2core.cli", "verify", "--model", str(model_dir), "--references", str(refs)],
                       capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_references_leave_nothing_verify_accepts(tiny_dir, tmp_path, sig):
    out, marker = tmp_path / "refs", tmp_path / "paused"
    proc = start_references(tiny_dir, out, tmp_path / "home", marker)
    partial = wait_for_partial_case(out, proc, marker)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert not out.exists(), f"{out} exists after {sig.name}"
    assert "no such directory" in verify_refuses(out, tiny_dir, tmp_path / "home")
    if sig == signal.SIGINT:  # Python cleans up: the temporary is gone and the user is told in one line
        assert proc.returncode == 130 and err.startswith("gpt2core: interrupted: references stopped"), err
        assert err.count("\n") == 1 and not partial.exists(), err
    else:  # killed outright: the hidden temporary stays, and is no reference set (no manifest)
        assert proc.returncode == -signal.SIGKILL and partial.exists()
        assert "manifest.json not found" in verify_refuses(partial, tiny_dir, tmp_path / "home")


def test_a_failure_midway_removes_the_partial_set(tiny_dir, tmp_path, monkeypatch):
    from gpt2core.verification import capture as capture_module
    from gpt2core.verification.cases import default_cases
    from gpt2core.verification.model_dir import read_model_dir
    from gpt2core.verification.reference_set import write_references

    md = read_model_dir(tiny_dir)
    real, calls = capture_module.capture, []

    def capture_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(capture_module, "capture", capture_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_references(md, tmp_path / "refs", default_cases(md.config, md.tokenizer), "float64")
    assert list(tmp_path.iterdir()) == [], "a partial set or temporary was left"


def test_atomic_directory_replaces_an_empty_directory_and_refuses_a_full_one(tmp_path):
    (tmp_path / "empty").mkdir()
    with atomic.atomic_directory(tmp_path / "empty") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".empty.partial-")
        (tmp / "a").write_text("1")
    assert (tmp_path / "empty" / "a").read_text() == "1"
    with pytest.raises(FileExistsError, match="is not empty"):
        with atomic.atomic_directory(tmp_path / "empty"):
            pytest.fail("entered for a non-empty destination")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_atomic_write_text_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = atomic.atomic_write_text(tmp_path / "report.html", "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.html"]
    atomic.atomic_write_text(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_build_once_builds_once_under_a_lock(tmp_path):
    built = []

    def build(path):
        built.append(path)
        path.mkdir()
        (path / "done").write_text("")

    def is_built(path):
        return (path / "done").is_file()

    for _ in range(3):
        assert atomic.build_once(tmp_path / "m", is_built, build) == tmp_path / "m"
    assert built == [tmp_path / "m"]
