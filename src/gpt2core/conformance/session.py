"""One pytest session's view of the conformance suite: the engine under test (Target), the built-in models,
their reference sets and subjects, and the parity comparisons, each computed once and shared by the tests."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..verification.cases import Case, default_cases
from ..errors import GPT2CoreError
from ..verification.model_dir import gpt2core_home, read_model_dir
from ..verification.reference_set import MANIFEST, load_references
from ..verification.subject import checkpoint_names
from ..verification.verify import budgets_of, compare_case
from .builtin import builtin_model_dir, cached_references
from .target import Target, resolve

DEFAULT_CASES = ["one_token", "hello", "sentence", "random_tokens", "padded_batch"]
ENGINE_OPTIONS = ("subject", "subject-cmd", "dumps")  # each names the engine under test
PATHS = ("dumps", "map", "references", "model", "cache")  # options that name a file or directory
N_LAYER = {"tiny": 2, "stress": 2}  # SHAPES["tiny"], stress.SHAPE


class UsageProblem(Exception):
    """The options do not name a usable engine (reported by the plugin as a usage error)."""


class ConformanceSession:
    def __init__(self, config):
        self.config = config
        self._target: Target | None = None
        self._refs: dict = {}
        self._subjects: dict = {}
        self._parity: dict = {}
        self._workdir: Path | None = None

    def option(self, name: str):
        """--gpt2core-<name>, else the ini key gpt2core_<name> (a path there is relative to the ini file)."""
        value = self.config.getoption(f"--gpt2core-{name}")
        if value in (None, [], ""):
            ini = self.config.getini(f"gpt2core_{name.replace('-', '_')}")
            value = (ini.split() if name == "dtype" else ini) or None
            if value and name in PATHS and self.config.inipath is not None:
                value = str(self.config.inipath.parent / value)
        return value

    @property
    def target(self) -> Target:
        """The engine the options name; an engine named on the command line replaces the ini file's."""
        if self._target is None:
            on_command_line = any(self.config.getoption(f"--gpt2core-{n}") for n in ENGINE_OPTIONS)
            get = (lambda n: self.config.getoption(f"--gpt2core-{n}")) if on_command_line else self.option
            timeout = self.option("timeout") or "600"
            try:
                seconds = float(timeout)
            except ValueError:
                raise UsageProblem(f"--gpt2core-timeout {timeout!r}: expected seconds, e.g. 600") from None
            try:
                self._target = resolve(get("subject"), get("subject-cmd"), get("dumps"), get("map"), get("references"),
                                       self.option("dtype"), seconds)  # fmt: skip
            except GPT2CoreError as e:  # SubjectError, DumpError (a map that is missing or malformed)
                raise UsageProblem(str(e)) from None
        return self._target

    def hypothesis_settings(self):
        """The drawn tests' settings, from the hypothesis profile loaded when they run (not when gpt2core was
        imported), with --gpt2core-examples' count; no deadline, and no too_slow or data_too_large health check:
        an example writes a model and runs the engine on it."""
        from hypothesis import HealthCheck, settings

        current = settings()  # the profile loaded now
        checks = set(current.suppress_health_check) | {HealthCheck.too_slow, HealthCheck.data_too_large}
        examples = self.option("examples")
        return settings(current, deadline=None, suppress_health_check=sorted(checks, key=lambda c: c.name),
                        max_examples=int(examples) if examples else current.max_examples)  # fmt: skip

    @property
    def cache(self) -> Path:
        return Path(self.option("cache") or gpt2core_home() / "conformance")

    def workdir(self, what: str) -> Path:
        """A new directory for `what` under this session's temporary directory (pytest's basetemp)."""
        if self._workdir is None:
            factory = getattr(self.config, "_tmp_path_factory", None)
            self._workdir = factory.mktemp("gpt2core") if factory else Path(tempfile.mkdtemp(prefix="gpt2core-"))
        return Path(tempfile.mkdtemp(prefix=what + "-", dir=self._workdir))

    # --- the parity tests' plan (at collection) ---------------------------------------------------------

    def parity_plan(self) -> list[tuple[str, str, list[str], list[str]]]:
        """(model, dtype, case names, checkpoint names) for every reference set the parity tests run on."""
        target = self.target
        if target.kind == "dumps":
            manifest = json.loads((target.reference_dir / MANIFEST).read_text()) if (target.reference_dir / MANIFEST).is_file() else None
            if manifest is None:
                raise UsageProblem(f"--gpt2core-references {target.references}: no {MANIFEST} there")
            names = checkpoint_names(manifest["model"]["config"]["n_layer"])
            return [("references", manifest["dtype"], [c["name"] for c in manifest["cases"]], names)]
        plan = [("tiny", dt, DEFAULT_CASES, checkpoint_names(N_LAYER["tiny"])) for dt in target.dtypes]
        if "float64" in target.dtypes:
            plan.append(("stress", "float64", DEFAULT_CASES, checkpoint_names(N_LAYER["stress"])))
        user = self.option("model")
        if user:
            config = Path(user) / "config.json"
            if not config.is_file():
                raise UsageProblem(f"--gpt2core-model {user}: no config.json there (give a Hugging Face GPT-2 directory)")
            n_layer = json.loads(config.read_text())["n_layer"]
            plan += [("user", dt, DEFAULT_CASES, checkpoint_names(n_layer)) for dt in target.dtypes]
        return plan

    # --- built once per session ----------------------------------------------------------------------

    def model_dir(self, model: str) -> Path:
        if model == "references":
            return Path(json.loads((self.target.reference_dir / MANIFEST).read_text())["model"]["path"])
        return builtin_model_dir(model, self.cache, self.option("model"))

    def references(self, model: str, dtype: str):
        key = (model, dtype)
        if key not in self._refs:
            if model == "references":
                self._refs[key] = load_references(self.target.reference_dir, self.model_dir(model))
            else:
                md = read_model_dir(self.model_dir(model))
                cases = default_cases(md.config, md.tokenizer)
                self._refs[key] = cached_references(self.cache, md.path, dtype, cases, lambda: self.workdir("references"),
                                                     command="pytest --pyargs gpt2core.conformance", capped=False)
        return self._refs[key]

    def subject(self, model: str, dtype: str):
        key = (model, dtype)
        if key not in self._subjects:
            self._subjects[key] = self.target.make(read_model_dir(self.model_dir(model)), dtype, self.workdir(f"{model}-{dtype}"))
        return self._subjects[key]

    def input_limits(self, dtype: str) -> dict:
        """What inputs the engine runs, asked before anything is drawn (its `can_run` on two probes, on the built-in
        tiny model): {"batch": several rows, "padding": rows of different lengths}. The drawn tests draw only
        such inputs, so none of their examples is lost to a case the engine cannot run."""
        key = ("limits", dtype)
        if key not in self._subjects:
            subject = self.subject("tiny", dtype)
            can_run = getattr(subject, "can_run", lambda case: None)
            ids = np.array([[1, 2], [3, 4]])
            batch = can_run(Case("probe-batch", ids)) is None
            probe = Case("probe-padding", ids if batch else ids[:1], np.array([[0, 1], [1, 1]] if batch else [[0, 1]]))
            self._subjects[key] = {"batch": batch, "padding": can_run(probe) is None}
        return self._subjects[key]

    def parity(self, model: str, dtype: str, mode: str) -> dict:
        """case name -> {"skip": reason} or {"comparisons": [Comparison, ...] in forward-pass order}."""
        key = (model, dtype, mode)
        if key not in self._parity:
            refs, subject = self.references(model, dtype), self.subject(model, dtype)
            provided = [n for n in refs.checkpoint_names if n in getattr(subject, "provides", refs.checkpoint_names)]
            budgets = budgets_of(subject, refs)
            out = {}
            for case in refs.cases:
                why = subject.can_run(case) if hasattr(subject, "can_run") else None
                budget = lambda name, c=case.name: budgets.atol(c, name)  # noqa: E731
                out[case.name] = {"skip": why} if why else {"comparisons": compare_case(subject, case, mode, provided, budgets.tol, budget)}
            self._parity[key] = out
        return self._parity[key]

    def cleanup(self) -> None:
        if self._workdir is not None and getattr(self.config, "_tmp_path_factory", None) is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
