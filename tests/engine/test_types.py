"""The package type-checks clean under ty (pinned in the test extra).

Beyond what a type error says about the code, a clean package is what mutmut's type_check_command needs: given
`ty check --output-format gitlab src/gpt2core`, mutmut records a mutant whose code ty rejects as caught (exit code 37)
without running a test, which is a kill by this suite because this test fails on any code ty rejects; and mutmut
can attribute an error to a mutant only when the unmutated code has none. setup.cfg leaves the command out: it
made the run from scratch slower (docs/mutation.md, 2026-12-05).
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

