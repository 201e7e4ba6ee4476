"""``run.py patch check FILE...``: check patches before a performance (every mistake, with its line),
against the model they will play (its unit numbers, layers and installed ablation sets)."""

from __future__ import annotations

import argparse
import sys

HELP = "check YAML patches (controller mappings, actions, start state): FILE:LINE for every mistake"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="check")
    check = sub.add_parser("check", help="check patch files (and ensemble files: an ensemble: key, checked the same); "
                                          "exit 2 if any has a mistake")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--model", help="the checkpoint the patches will play (default: the shipped model)")


def run(args: argparse.Namespace) -> int:
    from controllers.patch import PatchError, load_patch
    from instrument.live.model_checks import fitted_specs
    from instrument.live.params import INSTRUMENT_PARAMS
    from instrument.model import checkpoint

    model, _, where = checkpoint.load_or_default(args.model)
    specs = fitted_specs(INSTRUMENT_PARAMS, model.config.hidden, model.config.layers, where).values()
    bad = False
    for name in args.files:
        try:
            patch = load_patch(name, specs, own_ensemble=True)  # its mappings may steer its own voices
        except PatchError as error:
            bad = True
            print("\n".join(error.errors), file=sys.stderr)
            continue
        count = len(patch.ensemble.voices) if patch.ensemble else 0
        voices = f", ensemble {patch.ensemble.name} of {count} voice{'s' if count > 1 else ''}" if patch.ensemble else ""
        print(f"{name}: ok ({patch.mapping_count} mappings, {patch.action_count} actions{voices})")
    return 2 if bad else 0
