"""``run.py import-folkrnn SRC.pkl OUT``: the original folk-rnn v2 weights in our format."""

from __future__ import annotations

import argparse

from instrument.model import checkpoint
from instrument.model.folkrnn_import import metadata_from_pickle, model_from_params, read_pickle

HELP = "import the original folk-rnn v2 pickle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="folkrnn_v2.pkl from the folk-rnn repository")
    parser.add_argument("out", help="checkpoint to write")
    parser.add_argument("--half", action="store_true", help="store float16 weights (half the size)")


def run(args: argparse.Namespace) -> int:
    data = read_pickle(args.source)
    model = model_from_params(data["param_values"], data["token2idx"], where=args.source)
    checkpoint.save(args.out, model, metadata_from_pickle(data, args.source), half=args.half)
    cfg = model.config
    print(f"imported {cfg.layers} x {cfg.hidden} LSTM ({model.parameter_count():,} parameters) to {args.out}")
    return 0
