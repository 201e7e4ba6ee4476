"""``run.py corpus``: build the training corpus from the ABC collections music21 ships."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from instrument.cli import fail, seed

HELP = "turn music21's ABC folk collections into train/valid token files and a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from instrument.training.corpus import DEFAULT_COLLECTIONS, DEFAULT_SEED

    parser.add_argument("--collections", default=",".join(DEFAULT_COLLECTIONS),
                        help="comma-separated music21 corpus collections (default: %(default)s)")
    parser.add_argument("--out", required=True, type=Path,
                        help="directory for train.txt, valid.txt and report.json")
    parser.add_argument("--modes", choices=("inferred", "written"), default="inferred",
                        help="a tune whose K: names only a key: its mode found from its tonic (inferred, default) "
                             "or taken as major (written)")
    parser.add_argument("--seed", type=seed, default=DEFAULT_SEED,
                        help="seed of the 5%% validation hold-out (default: %(default)s)")


def _writable_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"--out {out} cannot be created ({error.strerror}); give a writable directory")
    if not os.access(out, os.W_OK | os.X_OK):
        fail(f"--out {out} is not writable; give a writable directory")


def run(args: argparse.Namespace) -> int:
    from instrument.training import corpus

    try:
        available = corpus.available_collections()
    except FileNotFoundError as error:
        fail(f"{error}; install the music21 package")
    names = [n.strip() for n in args.collections.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        fail(f"unknown collection {', '.join(unknown) or '(none given)'}; choose from: {', '.join(available)}")
    _writable_dir(args.out)
    started = time.perf_counter()
    tunes = {name: corpus.read_collection(name) for name in names}
    built = corpus.build(tunes, seed=args.seed, modes=args.modes)
    try:
        summary = corpus.write(built, args.out)
    except OSError as error:
        fail(f"cannot write to --out {args.out} ({error.strerror})")
    print("\n".join(corpus.summary_lines(summary)))
    print(f"wrote {args.out}/train.txt, valid.txt (+ .meta.tsv), report.json in {time.perf_counter() - started:.1f} s")
    return 0
