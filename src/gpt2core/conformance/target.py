"""The engine under test, named once per pytest session by the plugin's options (or ini keys):

  --gpt2core-subject MODULE:FACTORY     a Python engine: factory(model_dir, dtype) returns a subject
  --gpt2core-subject-cmd CMD --gpt2core-map MAP
                                        any program: CMD, with {model}, {references} and {dumps} filled in,
                                        runs a reference set's cases and writes .npy dumps MAP describes
  --gpt2core-dumps DIR --gpt2core-map MAP --gpt2core-references REFS
                                        dumps an engine already wrote for the reference set REFS (parity only)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..verification.dumps import DumpMap, DumpSubject
from ..verification.errors import SubjectError
from ..verification.external import CommandSubject, import_factory, reference_dtype
from ..verification.model_dir import ModelDir
from ..verification.subject import check_subject

DTYPES = ("float32", "float64")


@dataclass
class Target:
    """What the suite runs: `make(model_dir, dtype, workdir)` gives a subject for one model directory (a
    command subject writes its dumps under workdir); `verify_args` name it to `gpt2core verify`."""

    kind: str  # "python", "command" or "dumps"
    description: str
    dtypes: tuple[str, ...]
    make_subject: Callable = field(repr=False)
    verify_args: list[str] = field(default_factory=list)
    references: Path | None = None  # dumps: the reference set they were written for

    @property
    def reference_dir(self) -> Path:
        """The reference set a dumps target's files were written for (resolve gives every dumps target one)."""
        if self.references is None:
            raise SubjectError(f"a {self.kind} target has no reference set of its own")
        return self.references

    @property
    def runs_new_inputs(self) -> bool:
        """False for dumps: an engine that already ran can be compared on its reference set only."""
        return self.kind != "dumps"

    def make(self, model_dir: ModelDir, dtype: str, workdir: Path):
        subject = self.make_subject(model_dir, dtype, Path(workdir))
        check_subject(subject)
        return subject

    def reproduce(self, model_dir, references) -> str:
        """The command that runs the same comparison outside pytest."""
        args = ["gpt2core", "verify", "--model", str(model_dir), "--references", str(references), *self.verify_args]
        return shlex.join(args)


def resolve(subject: str | None, subject_cmd: str | None, dumps: str | None, map_file: str | None,
            references: str | None, dtypes: list[str] | None, timeout: float) -> Target:  # fmt: skip
    """The Target the options name; SubjectError says what is missing or contradictory."""
    chosen = [name for name, value in (("--gpt2core-subject", subject), ("--gpt2core-subject-cmd", subject_cmd),
                                       ("--gpt2core-dumps", dumps)) if value]  # fmt: skip
    if not chosen:
        raise SubjectError("no engine to test: give --gpt2core-subject MODULE:FACTORY, --gpt2core-subject-cmd CMD "
                           "--gpt2core-map MAP, or --gpt2core-dumps DIR --gpt2core-map MAP --gpt2core-references REFS "
                           "(or the ini key gpt2core_subject)")  # fmt: skip
    if len(chosen) > 1:
        raise SubjectError(f"give one engine, not {' and '.join(chosen)}")
    for d in dtypes or ():
        if d not in DTYPES:
            raise SubjectError(f"--gpt2core-dtype {d!r}: expected float32 or float64")
    if subject:
        factory = import_factory(subject, "--gpt2core-subject")
        declared = getattr(factory, "dtypes", None)  # a factory that declares its dtypes is asked first
        if declared is not None:
            if dtypes and not set(dtypes) <= set(declared):
                raise SubjectError(f"--gpt2core-dtype {', '.join(dtypes)}, but {subject} declares {', '.join(declared)} only")
            dtypes = [d for d in DTYPES if d in declared and (not dtypes or d in dtypes)]
        return Target("python", subject, tuple(dtypes or DTYPES),
                      lambda md, dtype, work: factory(md, np.dtype(dtype)), ["--subject", subject])  # fmt: skip
    if not map_file:
        raise SubjectError(f"{chosen[0]} needs --gpt2core-map MAP (the dump files' names and layouts)")
    dump_map = DumpMap.from_file(map_file)
    dtype = reference_dtype(dump_map)
    if dtypes and dtype not in dtypes:
        raise SubjectError(f"the map {map_file} declares {dump_map.dtype}; --gpt2core-dtype asks for {', '.join(dtypes)}")
    if subject_cmd:
        missing = [p for p in ("{model}", "{references}", "{dumps}") if p not in subject_cmd]
        if missing:
            raise SubjectError(f"--gpt2core-subject-cmd {subject_cmd!r} lacks {', '.join(missing)} (the suite draws "
                               "models and inputs: the command is told where each is)")  # fmt: skip
        return Target("command", subject_cmd, (dtype,),
                      lambda md, dt, work: CommandSubject(subject_cmd, work / "dumps", dump_map, md.config, timeout, md.path),
                      ["--subject-cmd", subject_cmd, "--map", str(Path(map_file).resolve())])  # fmt: skip
    assert dumps is not None  # chosen holds exactly one of the three options, and it is neither subject option
    if not references:
        raise SubjectError("--gpt2core-dumps needs --gpt2core-references REFS (the reference set the dumps were written for)")
    dumps_dir = Path(dumps)
    if not dumps_dir.is_dir():
        raise SubjectError(f"--gpt2core-dumps {dumps}: no such directory")
    return Target("dumps", str(dumps_dir), (dtype,), lambda md, dt, work: DumpSubject(dumps_dir, dump_map, md.config),
                  ["--dumps", str(dumps_dir.resolve()), "--map", str(Path(map_file).resolve())], Path(references))  # fmt: skip
