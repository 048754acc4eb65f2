"""The subject protocol: a subject that offers fewer capabilities is verified in fewer modes, and every
report says which modes did not run; the verdict is then INCOMPLETE, never PASS."""

from __future__ import annotations

import numpy as np
import pytest
from support.models import engine_model

from gpt2core.errors import SubjectError
from gpt2core.report import format_verify
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.subject import check_subject, checkpoint_names
from gpt2core.verification.verify import verify_model, verify_references


class ChainedOnly:
    """A subject that only runs whole forward passes (as many from-scratch engines do)."""

    name = "chained only"
    capabilities = frozenset()

    def __init__(self, model):
        self.inner = NumpySubject(model)

    def checkpoints(self, case):
        return self.inner.checkpoints(case)


def test_engine_names_are_the_protocol_names():
    from gpt2core import checkpoint_names as engine_names

    for n_layer in (1, 2, 12):
        assert engine_names(n_layer) == checkpoint_names(n_layer)


def test_modes_a_subject_does_not_offer_are_not_run_never_passed(tiny_dir, tmp_path_factory):
    from support.references import reference_set

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    subject = ChainedOnly(engine_model(tiny_dir, np.float64))
    run = verify_references(subject, refs)
    assert run["ok"] and not run["complete"] and run["verdict"] == "PASS"  # all it offers passed
    assert run["modes"]["chained"] == {"ran": True, "ok": True, "why": None}
    for mode, capability in (("isolated", "stages"), ("cached", "decode"), ("generate", "generate")):
        assert run["modes"][mode]["ran"] is False and run["modes"][mode]["ok"] is None
        assert capability in run["modes"][mode]["why"]
    assert all(row["isolated"] is None and row["cached"] is None for row in run["checkpoints"])
    text = format_verify({"verdict": run["verdict"], "runs": [run]})
    assert "isolated NOT RUN" in text and "cached NOT RUN" in text and "generate NOT RUN" in text
    assert "isolated PASS" not in text
    strict = verify_references(subject, refs, require="all")
    assert strict["verdict"] == "INCOMPLETE" and strict["ok"]
    text = format_verify({"verdict": strict["verdict"], "runs": [strict]})
    assert text.rstrip().splitlines()[-1].startswith("verify: INCOMPLETE")


def test_verify_model_takes_any_subject_factory(tiny_dir):
    report = verify_model(tiny_dir, factory=lambda md, dtype: ChainedOnly(engine_model(md.path, dtype)), dtypes=["float64"],
                          require="all")  # fmt: skip
    assert report["verdict"] == "INCOMPLETE" and not report["ok"]
    assert report["runs"][0]["subject"] == "chained only"


def test_a_subject_missing_a_checkpoint_fails_naming_it(tiny_dir, tmp_path_factory):
    from support.references import reference_set

    class Forgetful(ChainedOnly):
        def checkpoints(self, case):
            rec = dict(super().checkpoints(case))
            del rec["h1.mlp_act"]
            return rec

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    run = verify_references(Forgetful(engine_model(tiny_dir, np.float64)), refs)
    assert run["verdict"] == "FAIL" and run["first_divergence"]["name"] == "h1.mlp_act"
    assert "not returned by the subject" in run["first_divergence"]["message"]


@pytest.mark.parametrize(("broken", "message"), [
    (type("NoName", (), {"capabilities": frozenset(), "checkpoints": lambda self, c: {}}), "lacks name"),
    (type("Unknown", (), {"name": "u", "capabilities": frozenset({"telepathy"}), "checkpoints": lambda self, c: {}}), "unknown capabilities"),
    (type("Liar", (), {"name": "l", "capabilities": frozenset({"decode"}), "checkpoints": lambda self, c: {}}), "no decode"),
])  # fmt: skip
def test_malformed_subjects_are_refused(broken, message):
    with pytest.raises(SubjectError, match=message):
        check_subject(broken())


def test_a_python_engine_outside_the_repository_is_verified_by_module_path(tiny_dir, tmp_path, monkeypatch, capsys):
    """`gpt2core verify --subject pkg.module:factory`, with the package outside this repository; a broken
    copy of the same adapter fails at the checkpoint it breaks."""
    import json

    from gpt2core.cli import main

    pkg = tmp_path / "outside_engine"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "adapter.py").write_text(
        "import gpt2core\n"
        "from gpt2core.verification.numpy_subject import NumpySubject\n\n"
        "class Adapter(NumpySubject):\n"
        "    def checkpoints(self, case):\n"
        "        rec = dict(super().checkpoints(case))\n"
        "        if BROKEN:\n"
        "            rec['h1.mlp_act'] = rec['h1.mlp_act'] * 1.001\n"
        "        return rec\n\n"
        "BROKEN = False\n\n"
        "def make(model_dir, dtype):\n"
        "    return Adapter(gpt2core.load(model_dir.path, dtype=dtype), name='outside engine')\n"
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["verify", "--model", str(tiny_dir), "--dtype", "float64", "--subject", "outside_engine.adapter:make", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["subject"] == "outside engine" and report["verdict"] == "PASS"
    monkeypatch.setattr("outside_engine.adapter.BROKEN", True)
    assert main(args) == 1
    assert json.loads(capsys.readouterr().out)["runs"][0]["first_divergence"]["name"] == "h1.mlp_act"
    assert main(["verify", "--model", str(tiny_dir), "--subject", "outside_engine.adapter:nothing"]) == 2
    assert "has no callable 'nothing'" in capsys.readouterr().err
