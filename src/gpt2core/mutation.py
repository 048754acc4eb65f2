"""Reading `mutmut run` results (mutmut 3.x) into a score an auditor can gate on.

mutmut keeps one `mutants/<source path>.meta` JSON file per mutated module, whose `exit_code_by_key` maps
each mutant's name to the exit code of the tests run against it (null: never checked). This module reads
them from one or more run directories (shards of one run, split by mutant-name globs), merges them, and
scores them strictly:
  - killed = the tests failed (exit code 1, or 3 for a pytest internal error, as mutmut counts it), or the type
    checker rejected the mutant before any test ran (37, mutmut's "caught by type check", when setup.cfg gives a
    type_check_command: the `ty check` that tests/engine/test_types.py holds the unmutated code to);
  - a timeout is NOT a kill (mutmut's own summary counts it as one), a suspicious or never-checked mutant
    is not a kill either, and any of them fails the gate;
  - every survivor needs a one-line reason in the equivalents file (`<mutant name> @<code stamp>: <why no
    behaviour changes>`), or the gate fails. mutmut names a mutant by its function and a number, and numbers
    its mutants again when the function's source changes: the same name can then be another mutation. The
    stamp (code_stamps: a hash of the mutant's code, read from mutmut's mutated sources) ties each reason to
    the code it was written for; a survivor whose code no longer has that stamp is not excused, and a line
    without a stamp gets one from `gpt2core mutation-score --stamp` once it has been written.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GPT2CoreError

EQUIVALENTS_FILE = "mutmut-equivalents.txt"
KILLED_CODES = {1, 3}
TYPE_CHECKED_CODES = {37}  # killed too, and counted apart: the type checker, not a test, caught them
SURVIVED_CODES = {0}
TIMEOUT_CODES = {36, 24, -24, 152, 255}


class MutationResultsError(GPT2CoreError, ValueError):
    """mutmut's results are missing, malformed, or two shards disagree."""


def status_of(exit_code) -> str:
    if exit_code is None:
        return "not checked"
    if exit_code in KILLED_CODES or exit_code in TYPE_CHECKED_CODES:
        return "killed"
    if exit_code in SURVIVED_CODES:
        return "survived"
    if exit_code in TIMEOUT_CODES:
        return "timeout"
    return "other"  # no tests (5, 33), skipped (34), suspicious (35), segfault, interrupted: never a kill


def read_run(run_dir) -> dict[str, int | None]:
    """Mutant name -> exit code for every mutant of one run directory (the one holding `mutants/`)."""
    mutants = Path(run_dir) / "mutants"
    metas = sorted(mutants.rglob("*.meta")) if mutants.is_dir() else []
    if not metas:
        raise MutationResultsError(f"no mutmut results in {mutants} (no *.meta files); run `mutmut run` first")
    results: dict[str, int | None] = {}
    for meta in metas:
        try:
            codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            if not isinstance(codes, dict):
                raise TypeError("exit_code_by_key is not an object")
        except (ValueError, KeyError, TypeError) as e:
            raise MutationResultsError(f"{meta}: malformed mutmut results ({type(e).__name__}: {e})") from None
        results.update(codes)
    return results


def merge(runs: list[dict[str, int | None]]) -> dict[str, int | None]:
    """One result per mutant from several shards: a checked result wins over 'not checked'; two shards that
    checked the same mutant must agree."""
    merged: dict[str, int | None] = {}
    for run in runs:
        for name, code in run.items():
            have = merged.get(name)
            if have is not None and code is not None and status_of(have) != status_of(code):
                raise MutationResultsError(f"shards disagree on {name}: exit codes {have} and {code}")
            if have is None:
                merged[name] = code
    return merged


def triage_lines(path) -> list[tuple[int, str, str | None, str]]:
    """(line number, mutant name, stamp or None, reason) per `<mutant name> [@<stamp>]: <reason>` line of the
    equivalents file; blank lines and lines starting with # are skipped; no file: none."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        head, sep, reason = line.partition(":")
        words = head.split()
        stamped = len(words) == 2 and words[1].startswith("@") and len(words[1]) > 1
        if not sep or not reason.strip() or not (len(words) == 1 or stamped):
            raise MutationResultsError(f"{path}:{n}: expected '<mutant name> [@<code stamp>]: <reason>', got {line!r}")
        lines.append((n, words[0], words[1][1:] if stamped else None, reason.strip()))
    return lines


def read_equivalents(path) -> dict[str, str]:
    """Mutant name -> its triage reason."""
    return {name: reason for _, name, _, reason in triage_lines(path)}


def read_stamps(path) -> dict[str, str]:
    """Mutant name -> the code stamp its triage line was written for (stamped lines only)."""
    return {name: stamp for _, name, stamp, _ in triage_lines(path) if stamp is not None}


def function_node(source: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """`def name` parsed from its own lines of `source` alone, or None where they cannot be cut out alone: the def
    not found or found twice, decorated, or its lines cut inside a string, brackets or a continued line (the cut
    then does not parse). A mutant's triage check under mutmut reads one function of a mutated module of up to
    140,000 lines (verify.py): parsing the whole module took 13-17 s a mutant under mutmut, these lines 25 ms."""
    found = ((line_start(source, at), at) for at in occurrences(source, f"def {name}("))
    starts = [begin for begin, at in found if source[begin:at].strip() in ("", "async")]
    if len(starts) != 1:
        return None
    lines = source_lines(source, starts[0])
    first = next(lines)
    indent = len(first) - len(first.lstrip())
    above = next((line for line in source_lines_before(source, starts[0]) if line.strip() and not line.lstrip().startswith("#")), "")
    if len(above) - len(above.lstrip()) <= indent and above.lstrip().startswith(("@", ")", "]")):
        return None  # a decorator, or the end of one written over several lines
    body = [first]
    for line in lines:  # to the next statement indented no deeper than the def: comments, blank lines and the
        code = line.lstrip()  # closing bracket of a signature written over several lines belong to the function
        if code and not code.startswith(("#", ")", "]")) and len(line) - len(code) <= indent:
            break
        body.append(line)
    try:  # an indented def (a method) parses under `if 1:`, its lines and its strings' contents unchanged
        tree = ast.parse(("if 1:\n" if indent else "") + "".join(body))
    except (SyntaxError, ValueError):
        return None
    nodes = tree.body[0].body if indent else tree.body
    node = nodes[0] if len(nodes) == 1 else None
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name else None


def occurrences(text: str, part: str):
    """Every index at which `part` occurs in text."""
    at = text.find(part)
    while at >= 0:
        yield at
        at = text.find(part, at + 1)


def line_start(text: str, at: int) -> int:
    return text.rfind("\n", 0, at) + 1


def source_lines(text: str, start: int):
    """text's lines from the one beginning at `start`, each with its newline."""
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def source_lines_before(text: str, start: int):
    """text's lines before the one beginning at `start`, nearest first."""
    while start > 0:
        begin = line_start(text, start - 1)
        yield text[begin:start]
        start = begin


def function_stamp(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """12 hex digits of the hash of a function's code (ast.unparse: comments and layout left out), its own name
    left out (mutmut's renumbering alone changes no code)."""
    name, node.name = node.name, "mutant"
    try:
        return hashlib.sha256(ast.unparse(node).encode()).hexdigest()[:12]
    finally:
        node.name = name


def code_stamps(run_dirs, names) -> dict[str, str]:
    """Mutant name -> function_stamp of the mutant's code, for those of `names` found in the mutated sources that
    mutmut wrote (mutants/src/**.py, one function per mutant: `x_gelu__mutmut_3`, or `xǁGPT2ǁforward__mutmut_3` in
    its class). Each function is read from its own lines where they parse alone (function_node), else from the
    whole module."""
    wanted: dict[str, set[str]] = {}
    for name in names:
        module, _, function = name.rpartition(".")
        wanted.setdefault(module, set()).add(function)
    stamps: dict[str, str] = {}
    for run_dir in run_dirs:
        for module, functions in wanted.items():
            source = Path(run_dir, "mutants", "src", *module.split(".")).with_suffix(".py")
            left = {f for f in functions if f"{module}.{f}" not in stamps}
            if not source.is_file() or not left:
                continue
            text = source.read_text(encoding="utf-8")
            for function in sorted(left):
                node = function_node(text, function)
                if node is not None:
                    stamps[f"{module}.{function}"] = function_stamp(node)
                    left.discard(function)
            if not left:
                continue
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError) as e:
                raise MutationResultsError(f"{source}: unreadable mutated source ({type(e).__name__}: {e})") from None
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in left:
                    stamps[f"{module}.{node.name}"] = function_stamp(node)
    return stamps


def triaged_equivalent(name: str, run_dir, equivalents) -> str | None:
    """The reason of `name`'s triage line when the line is stamped with the mutant's present code (its code in
    run_dir's mutated sources), else None. tests/conftest.py runs no test for such a mutant under mutmut: it then
    counts as survived and excused, which is what running its tests would give if the reason holds, and never as
    killed (a wrong reason can cost a kill, never add one)."""
    line = {n: (stamp, reason) for _, n, stamp, reason in triage_lines(equivalents)}.get(name)
    if line is None or line[0] is None:
        return None
    return line[1] if code_stamps([run_dir], [name]).get(name) == line[0] else None


def stamp_equivalents(path, run_dirs) -> list[str]:
    """Add its code stamp to every line of the equivalents file that has none and names a mutant that survived
    in run_dirs (the lines the gate reads, each read against its mutant by whoever stamps); lines of mutants not
    run yet stay unstamped until they survive, and a line already stamped is left as it is (a stale stamp is
    re-triaged by hand: read `mutmut show NAME`, remove the stamp, then stamp). Returns the names stamped."""
    path = Path(path)
    if not path.is_file():
        return []
    survived = {name for name, code in merge([read_run(d) for d in run_dirs]).items() if status_of(code) == "survived"}
    unstamped = {n: name for n, name, stamp, _ in triage_lines(path) if stamp is None and name in survived}
    code = code_stamps(run_dirs, set(unstamped.values()))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    stamped = []
    for n, name in unstamped.items():
        if name in code:
            head, sep, rest = lines[n - 1].partition(":")
            lines[n - 1] = f"{head.rstrip()} @{code[name]}{sep}{rest}"
            stamped.append(name)
    if stamped:
        path.write_text("".join(lines), encoding="utf-8")
    return stamped


@dataclass
class Score:
    counts: dict[str, int]
    total: int
    score: float
    survivors: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    type_checked: int = 0  # of the killed, those the type checker caught (exit code 37)

    def passes(self, minimum: float) -> bool:
        return not self.problems and self.score >= minimum

    def as_dict(self, minimum: float) -> dict:
        return {"killed": self.counts["killed"], "killed_by_type_check": self.type_checked, "survived": self.counts["survived"],
                "timeout": self.counts["timeout"], "not_checked": self.counts["not checked"],
                "other": self.counts["other"], "total": self.total, "score": self.score, "minimum": minimum,
                "passes": self.passes(minimum), "survivors": self.survivors, "problems": self.problems}  # fmt: skip


def score(results: dict[str, int | None], equivalents: dict[str, str], stamps: dict[str, str] | None = None,
          code: dict[str, str] | None = None) -> Score:
    """Counts, the score (killed / all) and the gate's problems. With `code` (the survivors' code stamps,
    code_stamps) and `stamps` (read_stamps), a survivor's reason counts only where its line's stamp is its code's."""
    counts = {s: 0 for s in ("killed", "survived", "timeout", "not checked", "other")}
    survivors: list[dict] = []
    for name in sorted(results):
        status = status_of(results[name])
        counts[status] += 1
        if status == "survived":
            survivors.append({"name": name, "reason": equivalents.get(name)})
    total = len(results)
    problems = []
    if total == 0:
        problems.append("no mutant ran")
    for status in ("timeout", "not checked", "other"):
        if counts[status]:
            problems.append(f"{counts[status]} mutant(s) {status}")
    unexplained = [s["name"] for s in survivors if not s["reason"]]
    if unexplained:
        problems.append(f"{len(unexplained)} survivor(s) without a reason in {EQUIVALENTS_FILE}")
    if code is not None:
        stamps = stamps or {}
        triaged = [s for s in survivors if s["reason"]]
        unstamped = [s["name"] for s in triaged if s["name"] not in stamps]
        if unstamped:
            problems.append(f"{len(unstamped)} survivor(s) triaged without a code stamp in {EQUIVALENTS_FILE} "
                            f"(after reading each, `gpt2core mutation-score --stamp`): {', '.join(unstamped)}")  # fmt: skip
        changed = [f"{s['name']} (triaged @{stamps[s['name']]}, now @{code.get(s['name'], '<code not found>')})"
                   for s in triaged if s["name"] in stamps and stamps[s["name"]] != code.get(s["name"])]  # fmt: skip
        if changed:
            problems.append(f"{len(changed)} survivor(s) triaged for other code (mutmut renumbered or the function "
                            f"changed: re-triage with `mutmut show NAME`): {', '.join(changed)}")  # fmt: skip
    type_checked = sum(code in TYPE_CHECKED_CODES for code in results.values())
    return Score(counts, total, counts["killed"] / total if total else 0.0, survivors, problems, type_checked)


def score_runs(run_dirs, equivalents) -> Score:
    """The score of the merged results in run_dirs, every survivor's reason checked against its code's stamp."""
    results = merge([read_run(d) for d in run_dirs])
    survivors = [name for name, code in results.items() if status_of(code) == "survived"]
    return score(results, read_equivalents(equivalents), read_stamps(equivalents), code_stamps(run_dirs, survivors))
