"""Subjects from outside gpt2core: a Python factory named on the command line, a directory of dumps with
its map, or a command (any language) that runs the reference cases and writes the dumps."""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from .dumps import DumpMap, DumpSubject
from .errors import DumpError, SubjectError
from .mode_inputs import Unrelated

DEFAULT_TIMEOUT = 600  # seconds: a 124M-shape C engine runs the five default cases in well under a minute


def import_factory(spec: str, option: str = "--subject"):
    """'pkg.module:factory' -> the callable factory(model_dir, dtype) it names. The current directory is on the
    import path, as for `python -m`: an adapter module beside the user is found. Errors name `option`, the
    option the user gave it with."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SubjectError(f"{option} {spec!r}: expected MODULE:FACTORY, e.g. my_engine.gpt2core_adapter:make_subject")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SubjectError(f"{option} {spec!r}: cannot import {module_name} ({e}); the module must be importable "
                           "from the current directory or the installed packages") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SubjectError(f"{option} {spec!r}: {module_name} has no callable {attr!r}")
    return factory


def dump_factory(dumps_dir, dump_map: DumpMap):
    """A subject factory over dumps an engine already wrote (one dtype: the map's)."""
    dumps_dir = Path(dumps_dir)
    if not dumps_dir.is_dir():
        raise SubjectError(f"dump directory not found: {dumps_dir}")
    return lambda model_dir, dtype: DumpSubject(dumps_dir, dump_map, model_dir.config)


def reference_dtype(dump_map: DumpMap) -> str:
    """The reference dtype an engine is compared with: its precision class's (float64 for float64, else float32)."""
    return dump_map.precision.reference_dtype


def run_engine_command(template: str, references: Path, dumps: Path, timeout: float = DEFAULT_TIMEOUT,
                       model: Path | None = None) -> None:  # fmt: skip
    """Run `template` with {references}, {dumps} and {model} (the model directory) filled in (shell-quoted),
    once, in a shell.

    A non-zero exit is a SubjectError with the status and the tail of stderr; past `timeout` seconds the
    command's whole process group is killed and that is a SubjectError too."""
    command = template.replace("{references}", shlex.quote(str(references))).replace("{dumps}", shlex.quote(str(dumps)))
    if model is not None:
        command = command.replace("{model}", shlex.quote(str(model)))
    dumps.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SubjectError(f"the engine command ran past --timeout {timeout:g} s and was stopped: {command}") from None
    if proc.returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-5:])  # one line: the CLI's errors are one line
        raise SubjectError(f"the engine command {exit_status(proc.returncode)}: {command}"
                           + (f"; its stderr ends: {tail}" if tail else ""))  # fmt: skip


def exit_status(returncode: int) -> str:
    """How a command ended, in words: 'exited with status 3', 'was killed by signal SIGSEGV (11)', or for a shell's
    128 + n, 'exited with status 139 (a shell's status for signal SIGSEGV)'."""
    if returncode < 0:
        return f"was killed by signal {signal_name(-returncode)} ({-returncode})"
    shell_signal = signal_name(returncode - 128)
    if shell_signal is not None:
        return f"exited with status {returncode} (a shell's status for signal {shell_signal})"
    return f"exited with status {returncode}"


def signal_name(number: int) -> str | None:
    """SIGSEGV for 11; None for a number that is no signal (0 and below included)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def file_states(root: Path) -> dict[Path, tuple[int, int, int]]:
    """path -> (inode, size, modification time in ns) of every file under root (none when it does not exist)."""
    if not root.is_dir():
        return {}
    return {p: (st.st_ino, st.st_size, st.st_mtime_ns) for p in root.rglob("*") if p.is_file() for st in [p.stat()]}


class CommandSubject(DumpSubject):
    """Dumps written by an engine command, run once on the reference set before the first file is read, in
    whichever mode that is (the cases' reference directory fills {references}, the model directory {model})."""

    def __init__(self, template: str, dumps_dir: Path, dump_map: DumpMap, config, timeout: float, model: Path | None = None):
        super().__init__(dumps_dir, dump_map, config)
        self.template, self.timeout, self.model, self.ran = template, timeout, model, False
        self.stale: set[Path] = set()  # files the command found and left unchanged: not this run's output

    def run_once(self, case) -> None:
        if not self.ran:
            before = file_states(self.root)
            run_engine_command(self.template, case.root, self.root, self.timeout, self.model)
            after = file_states(self.root)
            self.stale = {p for p, state in before.items() if after.get(p) == state}
            self.ran = True

    def file(self, path: Path) -> Path:
        """`path`, recorded as read; a DumpError when the command did not write it (it was there, unchanged, before)."""
        super().file(path)
        if path in self.stale:
            raise DumpError(f"dump file {path} is left from an earlier run: the engine command did not write it "
                            "(it was there, unchanged, before the command ran)")  # fmt: skip
        return path

    def checkpoints(self, case):
        self.run_once(case)
        return super().checkpoints(case)

    def stage(self, name, case, ref):
        self.run_once(case)
        return super().stage(name, case, ref)

    def decode(self, case, split):
        if not isinstance(case, Unrelated):  # the unrelated request is the engine's own, run by the command
            self.run_once(case)
        return super().decode(case, split)

    def generate(self, case, max_new_tokens):
        self.run_once(case)
        return super().generate(case, max_new_tokens)

    def sample_scores(self, case, settings, ids):
        self.run_once(case)
        return super().sample_scores(case, settings, ids)


def command_factory(template: str, dump_map: DumpMap, dumps_dir: Path, timeout: float = DEFAULT_TIMEOUT):
    """A subject factory that runs the engine command once per reference set, into dumps_dir/<dtype>."""
    if "{dumps}" not in template:
        raise SubjectError(f"--subject-cmd {template!r} must contain {{dumps}} (where the engine writes its dumps)")
    return lambda model_dir, dtype: CommandSubject(template, Path(dumps_dir) / np.dtype(dtype).name, dump_map,
                                                   model_dir.config, timeout, model_dir.path)  # fmt: skip
