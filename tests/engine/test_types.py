"""The package type-checks clean under ty (pinned in the test extra), as mutmut's type_check_command needs.

setup.cfg's [mutmut] type_check_command runs the same `ty check` on the mutated sources: a mutant whose code
ty rejects is recorded as caught (mutmut's exit code 37) and runs no test. That is a kill by this suite only
because this test fails on any code ty rejects; and mutmut can attribute a type error to a mutant only when the
unmutated code has none (an error outside every mutant stops the run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "gpt2core"
TY = Path(sys.executable).parent / "ty"  # the environment's own ty, as pip installed it with the test extra


def test_the_package_has_no_type_error():
    assert TY.is_file(), f"{TY}: ty is not installed in this environment (pip install -e '.[test]')"
    done = subprocess.run([str(TY), "check", "--python", sys.prefix, "--output-format", "concise", "--no-progress", str(SRC)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0 and "All checks passed!" in done.stdout, done.stdout + done.stderr


def test_mutmut_type_checks_the_mutated_package_with_the_same_ty():
    """setup.cfg's type_check_command is this test's check (ty, gitlab output for mutmut's parser) over the same
    package, so a mutant counts as caught only for an error this test would fail on."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(SRC.parents[1] / "setup.cfg")
    command = [line for line in cfg.get("mutmut", "type_check_command").splitlines() if line]
    assert command[:2] == ["ty", "check"] and command[-1] == "src/gpt2core" == SRC.relative_to(SRC.parents[1]).as_posix()
    assert command[command.index("--output-format") + 1] == "gitlab"
    assert not [arg for arg in command if arg.startswith(("--ignore", "--warn", "--config", "--exclude"))], command
