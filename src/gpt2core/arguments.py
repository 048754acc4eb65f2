"""The argument types of the `gpt2core` command line: each checks one kind of value when argparse reads it,
before any model is loaded, built or written, and refuses a bad one in a line naming what it accepts."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import GPT2CoreError


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in gpt2core's form: one line on stderr, exit status 2."""

    def error(self, message):
        where = self.prog.removeprefix("gpt2core").strip()
        self.exit(2, f"gpt2core: error: {where + ': ' if where else ''}{message}\n")


def number(kind, low=None, high=None, low_open=False, what=""):
    """An argparse type: `kind` (int or float) within [low, high] ((low, high] with low_open), finite."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high) or value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text} is outside {what}")
        return value

    return parse


def model_location(text):
    """An argparse type: a model directory, or a model name in the local Hugging Face cache (nothing is read yet)."""
    from .engine.hub import resolve_model_dir

    try:
        path = resolve_model_dir(text)
    except GPT2CoreError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{path} has no config.json; expected a GPT-2 model directory")
    return str(path)


def existing(kind: str):
    """An argparse type: a path that must already be a directory (kind "dir") or a file ("file")."""

    def parse(text):
        path = Path(text)
        if not (path.is_dir() if kind == "dir" else path.is_file()):
            raise argparse.ArgumentTypeError(f"{text}: no such {'directory' if kind == 'dir' else 'file'}")
        return text

    return parse


def new_or_empty_dir(text):
    """An argparse type: a directory to create, or an empty one (nothing is ever overwritten)."""
    from .verification.atomic import check_new_or_empty_dir

    try:
        check_new_or_empty_dir(Path(text))
    except FileExistsError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def output_file(text):
    """An argparse type: a file to write, in a directory that exists (replaced whole when the command ends)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give a file name")
    if not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: directory {path.absolute().parent} does not exist")
    return text


def non_empty(text):
    """An argparse type: text with something in it (a prompt: " " is one token; a command: not blank)."""
    if not text:
        raise argparse.ArgumentTypeError("'' is empty")
    return text


def command_line(text):
    """An argparse type: a shell command that is not blank."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is blank; give the engine's command")
    return text


def module_factory(text):
    """An argparse type: MODULE:FACTORY, checked in form only (the import happens when verify runs)."""
    module, _, factory = text.partition(":")
    if not (module and factory and all(part.isidentifier() for part in module.split(".") + factory.split("."))):
        raise argparse.ArgumentTypeError(f"{text!r} is not MODULE:FACTORY (e.g. mypkg.adapter:make_subject)")
    return text
