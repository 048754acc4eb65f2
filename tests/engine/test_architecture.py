"""The layout is the architecture: the engine imports nothing else of gpt2core, the verification sees the
engine's computation only through the subject protocol, and no module imports its way back in a cycle.

Every import statement of every module counts, those inside functions too (ast, not importlib: a lazy
import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import gpt2core

PACKAGE = Path(gpt2core.__file__).parent
# What verification may read of the engine: how a model directory is described (config, tokenizer, where
# the weight files are, the errors they raise), never the computation under test.
MODEL_FORMAT = {"gpt2core.engine.config", "gpt2core.engine.tokenizer", "gpt2core.engine.hub",
                "gpt2core.engine.weights", "gpt2core.engine.errors"}  # fmt: skip
# The modules that reach the engine's computation on purpose: its adapter, and the fault catalogue,
# which patches the engine's functions by nature.
ENGINE_SIDE = {"gpt2core.verification.numpy_subject", "gpt2core.verification.faults", "gpt2core.verification.fault_variants"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The gpt2core modules `path` imports (`from . import ops` counts as gpt2core.<pkg>.ops)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` imports the module when there is one
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {m for m in found if m == "gpt2core" or m.startswith("gpt2core.")}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def test_the_graph_sees_the_engine_and_the_verification():
    assert "gpt2core.engine.model" in GRAPH and "gpt2core.verification.verify" in GRAPH
    assert "gpt2core.engine.ops" in GRAPH["gpt2core.engine.model"]  # relative imports resolved
    assert "gpt2core.engine.model" in GRAPH["gpt2core.verification.numpy_subject"]


def test_the_engine_imports_nothing_outside_the_engine():
    bad = {m: sorted(i for i in deps if not i.startswith("gpt2core.engine")) for m, deps in GRAPH.items()
           if m.startswith("gpt2core.engine")}  # fmt: skip
    assert not {m: d for m, d in bad.items() if d}, bad


def test_verification_sees_the_engine_only_through_the_protocol():
    bad = {}
    for m, deps in GRAPH.items():
        if not m.startswith("gpt2core.verification") or m in ENGINE_SIDE:
            continue
        engine = {d for d in deps if d.startswith("gpt2core.engine") and d not in MODEL_FORMAT}
        tools = {d for d in deps if not d.startswith(("gpt2core.engine", "gpt2core.verification"))}
        if engine or tools:
            bad[m] = sorted(engine | tools)
    assert not bad, f"verification modules importing the engine's computation or the tools above: {bad}"


def test_no_import_cycles():
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(GRAPH.get(m, ())):
            if state.get(d) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_conformance_suite_sees_engines_only_through_the_protocol():
    """gpt2core.conformance runs any subject: it reaches gpt2core's own engine only as the subject an ini file or
    option names, never by import; and nothing below it (engine, verification, the command line) imports it."""
    allowed_tools = {"gpt2core.errors", "gpt2core.init_model"}  # SHAPES
    bad = {}
    for m, deps in GRAPH.items():
        if m.startswith("gpt2core.conformance"):
            wrong = {d for d in deps if d.startswith("gpt2core.engine") and d not in MODEL_FORMAT}
            wrong |= {d for d in deps if not d.startswith(("gpt2core.engine", "gpt2core.verification", "gpt2core.conformance"))
                      and d not in allowed_tools}  # fmt: skip
            wrong |= {d for d in deps if d in ENGINE_SIDE}
        else:
            wrong = {d for d in deps if d.startswith("gpt2core.conformance")}
        if wrong:
            bad[m] = sorted(wrong)
    assert "gpt2core.conformance.plugin" in GRAPH and not bad, bad
