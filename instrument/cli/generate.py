"""``run.py generate``: tunes offline, in the tokens, ABC or JSON format."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Iterator, TextIO

from instrument.model.catalog import MODEL_HELP
from instrument.model import checkpoint
from instrument.cli import fail, seed
from instrument.model.generate import iter_tunes, parse_meter, parse_mode, parse_prompt
from instrument.music.tunes import Tune

HELP = "generate tunes offline (tokens, ABC or JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--meter", help="meter of every tune, e.g. 6/8 (default: the model chooses)")
    parser.add_argument("--mode", help="mode of every tune: maj, min, dor or mix (default: the model chooses)")
    parser.add_argument("--prompt", default="", help='body tokens every tune starts with, e.g. "|: G c"')
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 = greedy (default 1)")
    parser.add_argument("--seed", type=seed, help="random seed: the same arguments and seed give the same tunes")
    parser.add_argument("-n", "--count", type=int, default=1, help="how many tunes (default 1)")
    parser.add_argument("--max-tokens", type=int, default=1000, help="cut a tune off after this many tokens (default 1000)")
    parser.add_argument("--format", choices=("tokens", "abc", "json"), default="tokens", help="output format (default tokens)")
    parser.add_argument("--out", help="write to this file instead of stdout")


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        fail(f"--temperature must be a finite number, 0 or more, not {args.temperature}")
    if args.count < 1 or args.max_tokens < 1:
        fail("-n and --max-tokens must be at least 1")
    meter = parse_meter(args.meter) if args.meter else None
    mode = parse_mode(args.mode) if args.mode else None
    prompt = parse_prompt(args.prompt)
    model, _, _ = checkpoint.load_or_default(args.model)
    out = _open(args.out)
    try:
        tunes = iter_tunes(model, args.count, meter, mode, prompt, args.temperature, args.seed, args.max_tokens)
        _write(out, tunes, args.format)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _open(path: str | None) -> TextIO:
    if not path:
        return sys.stdout
    try:
        return Path(path).open("w")
    except OSError as error:
        fail(f"cannot write {path!r}: {error.strerror}")


def _write(out: TextIO, tunes: Iterator[Tune], form: str) -> None:
    """Each tune as soon as it is made, flushed: a long run shows its first tunes at once, and
    Ctrl-C (or a full disk) keeps every tune written so far, a JSON list closed."""
    if form == "json":
        out.write("[")
    number = 0
    try:
        for number, tune in enumerate(tunes, 1):
            if form == "tokens":
                text = tune.to_text() + "\n\n"
            elif form == "abc":
                text = ("\n" if number > 1 else "") + tune.to_abc(number, title=f"folk-instrument tune {number}")
            else:
                row = {"meter": tune.meter, "mode": tune.mode, "tokens": tune.body, "ended": tune.ended,
                       "abc": tune.to_abc(number)}
                text = ("," if number > 1 else "") + "\n" + json.dumps(row)
            out.write(text)
            out.flush()
    except OSError as error:
        fail(f"cannot write tune {number}: {error.strerror}")
    finally:
        if form == "json":
            out.write("\n]\n")
            out.flush()
