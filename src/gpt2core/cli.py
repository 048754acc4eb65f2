"""The `gpt2core` command line. Errors print one line (a traceback only with --debug) and exit 2."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .errors import GPT2CoreError


def cmd_init_model(args) -> int:
    from .init_model import init_model

    path = init_model(args.dir, shape=args.shape, seed=args.seed)
    print(f"wrote a {args.shape}-shape GPT-2 (seed {args.seed}) to {path}")
    return 0


def model_path(args) -> str:
    if args.model:
        return args.model
    from .init_model import builtin_model_dir

    return str(builtin_model_dir())


def cmd_generate(args) -> int:
    from .loading import load

    model = load(model_path(args), dtype=np.dtype(args.dtype))
    prompt_ids = model.tokenizer.encode(args.prompt)
    do_sample = args.sample or args.temperature is not None or args.top_k is not None or args.top_p is not None
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpt2core", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init-model", help="write a GPT-2 checkpoint directory with GPT-2's initialisation")
    p.add_argument("dir")
    p.add_argument("--shape", choices=["124M", "tiny"], default="124M")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_init_model)

    p = sub.add_parser("generate", help="continue a prompt (greedy unless a sampling flag is given)")
    p.add_argument("--model", help="model directory or cached model name (default: the built-in 124M-shape model)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, help="seed of the sampler (same seed, same tokens)")
    p.add_argument("--json", action="store_true", help="print prompt ids, new ids and text as JSON")
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (GPT2CoreError, ValueError, OSError) as e:
        if args.debug:
            raise
        print(f"gpt2core: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
