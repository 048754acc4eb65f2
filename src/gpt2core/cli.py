"""The `gpt2core` command line. Errors print one line (a traceback only with --debug) and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .arguments import (Parser, command_line, existing, model_location, module_factory, new_or_empty_dir,
                        non_empty, number, output_file)
from .errors import GPT2CoreError
from .init_model import SHAPES
from .verification.memory import check_fits, run_memory, weights_bytes


def cmd_init_model(args) -> int:
    from .init_model import init_model

    path = init_model(args.dir, shape=args.shape, seed=args.seed, stress=args.stress)
    kind = "stress GPT-2 (sharp attention, random biases, outlier channels)" if args.stress else "GPT-2"
    print(f"wrote a {args.shape}-shape {kind} (seed {args.seed}) to {path}")
    return 0


def model_path(args) -> str:
    if args.model:
        return args.model
    from .init_model import builtin_model_dir

    return str(builtin_model_dir())


def model_dir(path):
    """The model directory, read once for the whole command (config, tokenizer and hashes passed down)."""
    from .verification.model_dir import read_model_dir

    return read_model_dir(path)


def cmd_generate(args) -> int:
    from .engine.loading import load

    do_sample = args.sample or args.temperature is not None or args.top_k is not None or args.top_p is not None
    if args.seed is not None and not do_sample:
        raise ValueError("--seed seeds the sampler, and greedy decoding does not sample; add --sample (or drop --seed)")
    md = model_dir(model_path(args))
    prompt_ids = md.tokenizer.encode(args.prompt)
    if not prompt_ids:
        raise ValueError(f"--prompt {args.prompt!r} encodes to no tokens; give a prompt with some text")
    if len(prompt_ids) + args.max_new_tokens > md.config.n_positions:
        raise ValueError(f"--prompt ({len(prompt_ids)} token{'s' if len(prompt_ids) > 1 else ''}) plus --max-new-tokens {args.max_new_tokens} is more than "
                         f"the model's n_positions {md.config.n_positions}")  # fmt: skip
    model = load(md.path, dtype=np.dtype(args.dtype), config=md.config)
    ids = model.generate(
        np.array(prompt_ids),
        args.max_new_tokens,
        do_sample=do_sample,
        temperature=1.0 if args.temperature is None else args.temperature,
        top_k=args.top_k or 0,
        top_p=1.0 if args.top_p is None else args.top_p,
        seed=args.seed,
    )
    new_ids = [int(i) for i in ids[len(prompt_ids) :]]
    text = model.tokenizer.decode(ids)
    if args.json:
        print(json.dumps({"prompt": args.prompt, "prompt_ids": prompt_ids, "new_ids": new_ids, "text": text}))
    else:
        print(text)
    return 0


def cmd_references(args) -> int:
    from .verification.cases import cases_for
    from .verification.reference_set import write_references

    md = model_dir(model_path(args))
    cases = cases_for(md, args.prompt, args.full_length)
    check_fits(run_memory(md.config, [c.input_ids.shape for c in cases], [args.dtype]), "writing these references")
    out = write_references(md, args.out, cases, np.dtype(args.dtype), command=shell_command(args))
    print(f"wrote {len(cases)} reference case(s) ({', '.join(c.name for c in cases)}) in {args.dtype} to {out}")
    return 0


def shell_command(args) -> str:
    """The command line that ran, for a manifest's record."""
    import shlex

    return " ".join(shlex.quote(a) for a in ["gpt2core", *args.argv])


def subject_factory(args, scratch: Path):
    """The subject verify runs (default gpt2core's engine) and the dtypes it is compared in; an engine
    command writes its dumps under `scratch`."""
    from .verification.dumps import DumpMap
    from .verification.errors import DumpError
    from .verification.external import DEFAULT_TIMEOUT, command_factory, dump_factory, import_factory, reference_dtype

    if args.references and (args.prompt or args.full_length):
        raise ValueError(f"--references fixes the cases; {'--prompt' if args.prompt else '--full-length'} would be ignored: give one or the other")
    if args.timeout is not None and not args.subject_cmd:
        raise ValueError("--timeout limits --subject-cmd; give it with --subject-cmd CMD")
    chosen = [flag for flag, value in (("--subject", args.subject), ("--subject-cmd", args.subject_cmd),
                                       ("--dumps", args.dumps)) if value]  # fmt: skip
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(chosen)} name two subjects; give one")
    if (args.dumps or args.subject_cmd) and not args.map:
        raise ValueError(f"{chosen[0]} needs --map MAP (how the engine lays out its dumps; see gpt2core.verification.dumps)")
    if args.map and not (args.dumps or args.subject_cmd):
        raise ValueError("--map describes dumps: give it with --dumps DIR or --subject-cmd CMD")
    if args.dumps and not args.references:
        raise ValueError("--dumps needs --references DIR: the reference set the engine ran")
    dtypes = [args.dtype] if args.dtype else ["float32", "float64"]
    if args.subject:
        factory = import_factory(args.subject)
        declared = getattr(factory, "dtypes", None)  # a factory that declares its dtypes is asked first
        if declared is not None:
            if args.dtype and args.dtype not in declared:
                raise ValueError(f"--dtype {args.dtype}, but --subject {args.subject} declares {', '.join(declared)} only")
            dtypes = [d for d in ("float32", "float64") if d in declared and d in dtypes]
        return factory, dtypes
    if args.dumps or args.subject_cmd:
        try:
            dump_map = DumpMap.from_file(args.map)
        except DumpError as e:
            raise DumpError(f"--map {e}") from None
        dtype = reference_dtype(dump_map)
        if args.dtype and args.dtype != dtype:
            raise ValueError(f"--dtype {args.dtype}, but the map declares a {dump_map.dtype} engine (compared in {dtype})")
        if args.dumps:
            return dump_factory(args.dumps, dump_map), [dtype]
        return command_factory(args.subject_cmd, dump_map, scratch, args.timeout or DEFAULT_TIMEOUT), [dtype]
    return None, dtypes


def references_model(reference_dirs) -> str | None:
    """The model a reference set was made for (its manifest's record), for a verify run given --references but
    no --model; None without --references. A record that points nowhere is refused: nothing is built instead."""
    from .verification.reference_set import MANIFEST

    if not reference_dirs:
        return None
    manifest = Path(reference_dirs[0]) / MANIFEST
    try:
        path = json.loads(manifest.read_text())["model"]["path"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"--references {reference_dirs[0]}: no readable {MANIFEST} naming its model; give --model DIR") from None
    if not (Path(path) / "config.json").is_file():
        raise ValueError(f"--references {reference_dirs[0]} was made for the model in {path}, which is not there; "
                         "give --model DIR (the same weights)")  # fmt: skip
    return path


def cmd_cache(args) -> int:
    """gpt2core cache list | clear: the reference sets verify keeps (gpt2core.verification.reference_cache)."""
    from .verification.reference_cache import cache_root, cap_bytes, clear, entries

    root = cache_root()
    if args.action == "clear":
        removed = clear(root)
        print(json.dumps({"removed": removed}) if args.json else f"removed {len(removed)} reference set(s) from {root / 'references'}")
        return 0
    sets = entries(root)
    if args.json:
        print(json.dumps({"root": str(root / "references"), "cap_bytes": cap_bytes(), "sets": sets}))
        return 0
    total = sum(e["bytes"] for e in sets)
    print(f"{len(sets)} reference set(s) in {root / 'references'}, {total / 1e9:.2f} GB of a {cap_bytes() / 1e9:.1f} GB cap "
          "(GPT2CORE_REFERENCE_CACHE_GB), least recently used first:")  # fmt: skip
    for e in sets:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["last_used"]))
        print(f"  {Path(e['path']).name}  {e['dtype']}  {e['bytes'] / 1e6:.1f} MB  used {used}  model {e['model']}  "
              f"cases {', '.join(e['cases'])}")  # fmt: skip
    return 0


def check_cases(md, args) -> None:
    """Before any capture: the prompts make cases that fit the model, or the given reference sets are readable
    sets made for these weights."""
    from .verification.cases import cases_for
    from .verification.reference_set import load_references

    if args.references:
        for ref_dir in args.references:
            load_references(ref_dir, md)
    else:
        cases_for(md, args.prompt, args.full_length)


def cmd_verify(args) -> int:
    from .report import format_verify, verify_html, write_junit
    from .verification.atomic import atomic_write_text
    from .verification.verify import verify_model

    import tempfile

    with tempfile.TemporaryDirectory(prefix="gpt2core-dumps-") as scratch:  # an engine command's dumps, removed after
        factory, dtypes = subject_factory(args, Path(scratch))
        md = model_dir(args.model or references_model(args.references) or model_path(args))
        check_cases(md, args)
        report = verify_model(
            md,
            factory=factory,
            dtypes=dtypes,
            reference_dirs=args.references,
            prompts=args.prompt,
            full_length=args.full_length,
            command=shell_command(args),
            require=args.require,
            cache=not args.no_cache,
        )
    if args.junit:
        write_junit(report, args.junit, group=args.junit_group)
    if args.html:
        atomic_write_text(args.html, verify_html(report))
    print(json.dumps(report) if args.json else format_verify(report))
    return EXIT_CODES[report["verdict"]]


def cmd_budgets(args) -> int:
    """gpt2core budgets: measure precision classes' budgets on reference sets and store them there; with --check,
    recompute them and compare with the stored ones (exit 1 when they do not reproduce)."""
    from .report import format_budget_table
    from .verification.precision import budgets
    from .verification.precision.classes import precision_class
    from .verification.reference_set import load_references
    from .verification.tolerances import BUDGET_REPRODUCE_RTOL

    classes = [precision_class(p) for p in args.precision]
    out, ok = [], True
    for ref_dir in args.references:
        md = model_dir(args.model or references_model([ref_dir]))
        refs = load_references(ref_dir, md)
        for cls in classes:
            if not cls.calibrated:
                raise ValueError(f"precision {cls.name} has no measured budgets: {cls.description}")
            if args.check:  # the stored ones (a ReferencesError naming the command when there are none), recomputed
                stored = budgets.budgets_for(refs, cls.name).doc
                assert stored is not None  # budgets_for raises (naming the command) for a calibrated class without them
                change = budgets.largest_change(stored["cases"], budgets.measure(md, refs.cases, cls.name))
                same = change <= BUDGET_REPRODUCE_RTOL
                ok &= same
                out.append({"references": str(ref_dir), "precision": cls.name, "largest_relative_change": change, "reproduced": same})
                text = (f"{ref_dir} {cls.name}: {'reproduced' if same else 'NOT REPRODUCED'}: largest relative change of an "
                        f"honest error {change:.3e} (allowed {BUDGET_REPRODUCE_RTOL:.0e})")  # fmt: skip
            else:
                doc = budgets.ensure_budgets(refs, md, cls.name, command=shell_command(args), force=args.force)
                assert doc is not None  # None only for an uncalibrated class, refused above
                out.append({"references": str(ref_dir), "precision": cls.name, "path": str(budgets.path_of(refs.root, cls.name)),
                            "kinds": budgets.by_kind(doc)})  # fmt: skip
                text = format_budget_table(out[-1])
            if not args.json:
                print(text)
    if args.json:
        print(json.dumps(out))
    return 0 if ok else 1


def fault_model_dir(path):
    """The given model, or the stress model (sharp attention, random biases, outliers) the catalogue is tuned on."""
    from .verification.stress import stress_model_dir

    return model_dir(path if path else stress_model_dir())


def check_fault_names(names) -> None:
    """Unknown --fault names are refused before any model is built."""
    from .verification.faults import FAULTS

    unknown = [n for n in names or [] if n not in FAULTS]
    if unknown:
        raise ValueError(f"--fault {', '.join(unknown)}: not a known fault; known: {', '.join(FAULTS)}")


def cmd_faults(args) -> int:
    from .verification.faults import catalogue_on

    check_fault_names(args.fault)
    from .report import format_faults

    report = catalogue_on(fault_model_dir(args.model), names=args.fault, with_sensitivity=not args.no_sensitivity,
                          command=shell_command(args))  # fmt: skip
    print(json.dumps(report) if args.json else format_faults(report))
    return 0 if report["caught"] == report["total"] else 1


def cmd_mutation_score(args) -> int:
    from .mutation import EQUIVALENTS_FILE, score_runs, stamp_equivalents
    from .report import format_mutation_score

    run_dirs, equivalents = args.merge or ["."], args.equivalents or EQUIVALENTS_FILE
    if args.stamp:
        stamped = stamp_equivalents(equivalents, run_dirs)
        print(f"stamped {len(stamped)} line(s) of {equivalents} with their mutant's code", file=sys.stderr)
    report = score_runs(run_dirs, equivalents).as_dict(args.min)
    print(json.dumps(report) if args.json else format_mutation_score(report))
    return 0 if report["passes"] else 1


def cmd_audit(args) -> int:

    from .audit import run_audit
    from .mutation import EQUIVALENTS_FILE
    from .report import audit_html
    from .verification.atomic import atomic_write_text

    check_fault_names(args.fault)
    audit = run_audit(
        model_dir(model_path(args)),
        fault_model_dir(args.fault_model),
        mutation_dirs=args.mutants or ["."],
        equivalents=args.equivalents or EQUIVALENTS_FILE,
        minimum=args.min,
        faults=args.fault,
        with_sensitivity=not args.no_sensitivity,
        command=shell_command(args),
    )
    atomic_write_text(args.out, audit_html(audit))
    if args.json:
        print(json.dumps(audit))
    else:
        v, f, m = audit["verify"], audit["faults"], audit["mutation"]
        missing = f" (not run: {'; '.join(audit['missing'])})" if audit["missing"] else ""
        print(f"audit: {audit['verdict']}{missing} - parity "
              + ", ".join(f"{r['dtype']} {'PASS' if r['ok'] else 'FAIL'} (max abs {r['max_abs']:.3e})" for r in v["runs"])
              + f"; faults {f['caught']}/{f['total']} caught; mutation "
              + (f"{m['score']:.2%} ({'PASS' if m['passes'] else 'FAIL'})" if "score" in m else "results not found")
              + f"; report written to {args.out}")  # fmt: skip
    return EXIT_CODES[audit["verdict"]]


def cmd_bench(args) -> int:
    from .bench import PROMPT_LEN, format_bench, run_bench

    md = model_dir(model_path(args))
    if PROMPT_LEN + args.new_tokens > md.config.n_positions:
        raise ValueError(f"--new-tokens {args.new_tokens} after the {PROMPT_LEN}-token prompt is more than the model's "
                         f"n_positions {md.config.n_positions}")  # fmt: skip
    yardstick = weights_bytes(md.config, args.dtype)  # a pass over as many bytes as the weights, beside them
    check_fits(run_memory(md.config, [], [args.dtype], also_held_bytes=yardstick), "this benchmark")
    report = run_bench(md.path, dtype=np.dtype(args.dtype), threads=args.threads,
                       new_tokens=args.new_tokens, repeats=args.repeats)  # fmt: skip
    print(json.dumps(report) if args.json else format_bench(report))
    return 0


# verify's and audit's exit status: PASS, FAIL (a comparison failed), INCOMPLETE (a part did not run: for verify
# with --require all, for audit always); 2: an error
EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCOMPLETE": 3}
MODEL_HELP = "model directory or cached model name (default: the built-in 124M-shape model)"


def add_fault_options(p: argparse.ArgumentParser) -> None:
    """The fault catalogue's options, shared by `faults` and `audit`."""
    p.add_argument("--fault", action="append", help="only this fault (repeatable)")
    p.add_argument("--no-sensitivity", action="store_true", help="skip the weight-perturbation sensitivity scan")


def add_score_options(p: argparse.ArgumentParser) -> None:
    """The mutation-score gate's options, shared by `mutation-score` and `audit`."""
    p.add_argument("--min", type=number(float, 0, 1, what="[0, 1]"), default=0.95, help="the minimum mutation score (default 0.95)")
    p.add_argument("--equivalents", type=existing("file"), help="survivor triage file (default: mutmut-equivalents.txt)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gpt2core", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init-model", help="write a GPT-2 checkpoint directory with GPT-2's initialisation")
    p.add_argument("dir", type=new_or_empty_dir, help="a new or empty directory")
    p.add_argument("--shape", choices=list(SHAPES), default="124M",
                   help="gpt2 (124M), gpt2-medium (355M), gpt2-large (774M), gpt2-xl (1558M), or tiny")
    p.add_argument("--seed", type=number(int, 0, 2**63 - 1, what="0 to 2**63-1"), default=0)
    p.add_argument("--stress", action="store_true",
                   help="the stress model's weights (the fault catalogue's model) instead of GPT-2's initialisation")
    p.set_defaults(func=cmd_init_model)

    p = sub.add_parser("generate", help="continue a prompt (greedy unless a sampling flag is given)")
    p.add_argument("--model", type=model_location, help=MODEL_HELP)
    p.add_argument("--prompt", required=True, type=non_empty)
    p.add_argument("--max-new-tokens", type=number(int, 0, what="0 or more"), default=20)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=number(float, 0, low_open=True, what="(0, inf)"))
    p.add_argument("--top-k", type=number(int, 0, what="0 or more (0: no top-k)"))
    p.add_argument("--top-p", type=number(float, 0, 1, low_open=True, what="(0, 1]"))
    p.add_argument("--seed", type=number(int, 0, 2**63 - 1, what="0 to 2**63-1"), help="seed of the sampler (same seed, same tokens)")
    p.add_argument("--json", action="store_true", help="print prompt ids, new ids and text as JSON")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("references", help="write transformers' checkpoints of every layer as .npy + manifest.json")
    p.add_argument("--model", type=model_location, help=MODEL_HELP)
    p.add_argument("--out", required=True, type=new_or_empty_dir, help="a new or empty directory")
    p.add_argument("--prompt", action="append", type=non_empty, help="a prompt (repeat for several; default: the built-in cases)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--full-length", action="store_true", help="add a case of all n_positions positions (large files)")
    p.set_defaults(func=cmd_references)

    p = sub.add_parser("verify", help="compare every checkpoint of every layer with transformers; exit 1 on failure")
    p.add_argument("--model", type=model_location, help=MODEL_HELP)
    p.add_argument("--dtype", choices=["float32", "float64"], help="only this dtype (default: both)")
    p.add_argument("--references", nargs="+", metavar="DIR", type=existing("dir"), help="use these reference sets instead of building them")
    p.add_argument("--prompt", action="append", type=non_empty, help="verify on these prompts instead of the built-in cases")
    p.add_argument("--full-length", action="store_true", help="add a case of all n_positions positions")
    p.add_argument("--json", action="store_true", help="print the whole report as one JSON object")
    p.add_argument("--subject", metavar="MODULE:FACTORY", type=module_factory, help="verify the engine factory(model_dir, dtype) returns")
    p.add_argument("--dumps", metavar="DIR", type=existing("dir"), help="verify dumps an engine wrote for --references (needs --map)")
    p.add_argument("--map", metavar="MAP", type=existing("file"), help="JSON map of the engine's dump files and layouts")
    p.add_argument("--subject-cmd", metavar="CMD", type=command_line, help='run CMD (with {references}, {dumps} and {model} filled in) once, then verify its dumps (needs --map)')
    p.add_argument("--timeout", type=number(float, 0, low_open=True, what="(0, inf) seconds"),
                   help="seconds --subject-cmd may run (default 600; only with --subject-cmd)")
    p.add_argument("--require", choices=["offered", "all"], default="offered",
                   help="offered: pass when all the subject offers passes (default); all: INCOMPLETE unless every checkpoint, case and mode ran")
    p.add_argument("--junit", metavar="FILE", type=output_file, help="also write JUnit XML (see --junit-group)")
    p.add_argument("--html", metavar="FILE", type=output_file, help="also write the report as one HTML page (error growth, margin heatmaps)")
    p.add_argument("--junit-group", choices=["checkpoint", "kind", "case"], default="checkpoint",
                   help="JUnit testcases per case and checkpoint (default), per checkpoint kind, or per case")
    p.add_argument("--no-cache", action="store_true", help="capture the references into a temporary directory, not the cache")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("budgets", help="measure precision classes' budgets on reference sets (transformers at that precision); --check: do they reproduce")
    p.add_argument("--references", nargs="+", metavar="DIR", required=True, type=existing("dir"))
    p.add_argument("--model", type=model_location, help="the set's model (default: the one its manifest records)")
    p.add_argument("--precision", nargs="+", required=True, type=non_empty,
                   help="classes: float32 float16 bfloat16 int8 float32-f16kv gguf-f16 (f16) gguf-q8_0 (q8_0) gguf-q4_0 (q4_0)")
    p.add_argument("--force", action="store_true", help="recompute and replace stored budgets")
    p.add_argument("--check", action="store_true", help="recompute and compare with the stored budgets; exit 1 unless they reproduce")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_budgets)

    p = sub.add_parser("cache", help="list or clear the reference sets verify keeps ($GPT2CORE_HOME/references)")
    p.add_argument("action", choices=["list", "clear"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("faults", help="inject every catalogued fault and show where the comparison catches it")
    p.add_argument("--model", type=model_location, help="model directory (default: the stress model: sharp attention, random biases, outliers)")
    add_fault_options(p)
    p.add_argument("--json", action="store_true", help='print {"faults": [{"name", "caught", "checkpoint", "margin", ...}]}')
    p.set_defaults(func=cmd_faults)

    p = sub.add_parser("mutation-score", help="score mutmut's results (timeouts are not kills); exit 1 below --min")
    add_score_options(p)
    p.add_argument("--merge", nargs="+", metavar="DIR", type=existing("dir"), help="merge the results of these run directories (shards)")
    p.add_argument("--stamp", action="store_true", help="first stamp each unstamped line of the equivalents file with its mutant's code")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_mutation_score)

    p = sub.add_parser("audit", help="parity (both dtypes), the fault catalogue and mutation results in one HTML report")
    p.add_argument("--model", type=model_location, help=MODEL_HELP)
    p.add_argument("--fault-model", type=model_location, help="model for the fault catalogue (default: the stress model)")
    p.add_argument("--out", default="report.html", type=output_file, help="the HTML file to write (default report.html)")
    p.add_argument("--mutants", nargs="+", metavar="DIR", type=existing("dir"), help="directories holding mutmut's mutants/ (default: .)")
    add_score_options(p)
    add_fault_options(p)
    p.add_argument("--json", action="store_true", help="also print the whole audit as one JSON object")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("bench", help="time gpt2core and transformers on the same weights, with bandwidth and matmul yardsticks")
    p.add_argument("--model", type=model_location, help=MODEL_HELP)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--threads", type=number(int, 1, what="1 or more"), help="BLAS and torch threads (default: the CPUs this process may use)")
    p.add_argument("--new-tokens", type=number(int, 1, what="1 or more"), default=128, help="greedy tokens to decode (default 128)")
    p.add_argument("--repeats", type=number(int, 1, what="1 or more"), default=5, help="timed runs per figure; the median is reported")
    p.add_argument("--json", action="store_true", help="print every figure and ratio as one JSON object")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (GPT2CoreError, ValueError, OSError) as e:
        if args.debug:
            raise
        print(f"gpt2core: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # what was being written lies under a temporary name, already removed
        print(f"gpt2core: interrupted: {args.command} stopped; it left nothing half-written (writes go to a "
              f"temporary name, renamed when complete)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
