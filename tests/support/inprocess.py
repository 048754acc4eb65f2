"""Running a pytest session or a gpt2core command inside this process (pytest.main, cli.main): torch and
transformers are imported once, not once per run as a fresh interpreter would."""

from __future__ import annotations

import pytest


class Outcome:
    """The reports of a pytest session run inside this process."""

    def __init__(self):
        self.passed, self.failed, self.errors, self.skipped = [], [], [], []

    def pytest_runtest_logreport(self, report):
        if report.skipped:
            self.skipped.append(report)
        elif report.when == "call" and report.passed:
            self.passed.append(report)
        elif report.failed:
            (self.failed if report.when == "call" else self.errors).append(report)


def run_pytest(args: list[str], plugins: list = ()) -> tuple[int, Outcome]:
    """pytest.main(args) in this process, with `plugins` besides: its exit status and its reports."""
    outcome = Outcome()
    return pytest.main(args, plugins=[outcome, *plugins]), outcome


def run_command(args: list[str]) -> tuple[int, str]:
    """gpt2core's command line (cli.main(args)) in this process: its exit status and what it printed."""
    import contextlib
    import io

    from gpt2core.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(args)
    return rc, printed.getvalue()
