"""``run.py generate``: tunes offline, in the tokens, ABC or JSON format."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from instrument.model.catalog import MODEL_HELP
from instrument.model import checkpoint
from instrument.cli import fail
from instrument.model.generate import generate_tunes, parse_meter, parse_mode, parse_prompt
from instrument.music.tunes import format_tunes

HELP = "generate tunes offline (tokens, ABC or JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--meter", help="meter of every tune, e.g. 6/8 (default: the model chooses)")
    parser.add_argument("--mode", help="mode of every tune: maj, min, dor or mix (default: the model chooses)")
    parser.add_argument("--prompt", default="", help='body tokens every tune starts with, e.g. "|: G c"')
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 = greedy (default 1)")
    parser.add_argument("--seed", type=int, help="random seed: the same arguments and seed give the same tunes")
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
    tunes = generate_tunes(model, args.count, meter, mode, prompt, args.temperature, args.seed, args.max_tokens)
    if args.format == "tokens":
        text = format_tunes(tunes)
    elif args.format == "abc":
        text = "\n".join(t.to_abc(i, title=f"folk-instrument tune {i}") for i, t in enumerate(tunes, 1))
    else:
        rows = [
            {"meter": t.meter, "mode": t.mode, "tokens": t.body, "ended": t.ended, "abc": t.to_abc(i)}
            for i, t in enumerate(tunes, 1)
        ]
        text = json.dumps(rows, indent=1) + "\n"
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as error:
            fail(f"cannot write {args.out!r}: {error.strerror}")
    else:
        sys.stdout.write(text)
    return 0
