"""``run.py render``: a performance rendered offline to a WAV file, without any device."""

from __future__ import annotations

import argparse
import sys

from instrument.model import checkpoint
from instrument.cli import fail
from instrument.cli.options import add_performance_arguments, apply_start_state, choose_ensemble, ensemble_params, limits_from_args
from instrument.live.model_checks import fit_to_model, fitted_specs
from instrument.live.params import INSTRUMENT_PARAMS
from instrument.live.render import perform, record_take, render_take

HELP = "render a performance offline to a WAV file (no sound device needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="WAV file to write, e.g. take.wav")
    parser.add_argument("--samplerate", type=int, default=48000, help="samples per second (default 48000)")
    parser.add_argument("--record", metavar="FILE.mid", help="also write the take as FILE.mid (a track per voice) and its "
                                                             "tunes as FILE.abc (a V: per voice), as play --record does")
    add_performance_arguments(parser, default_bars=16)


def run(args: argparse.Namespace) -> int:
    from instrument.outputs.synth import write_wav

    limits = limits_from_args(args)
    if not (limits.bars or limits.tunes or limits.seconds):
        fail("render needs an end: --bars, --tunes or --seconds")
    if not 8000 <= args.samplerate <= 192000:
        fail("--samplerate must be within 8000..192000")
    if args.record is not None and not args.record.lower().endswith(".mid"):
        fail(f"--record {args.record}: give a .mid file name (the tunes go beside it as .abc)")
    model, _, where = checkpoint.load_or_default(args.model)
    ensemble = choose_ensemble(args)
    specs = fitted_specs(INSTRUMENT_PARAMS, model.config.hidden, model.config.layers, where).values()
    params = ensemble_params(specs, ensemble)
    fit_to_model(params, model.config.hidden, model.config.layers, where)
    apply_start_state(params, args)
    take = perform(model, params, limits, seed=args.seed, model_path=where, ensemble=ensemble)
    audio, by = render_take(take, args.samplerate, params.get("timbre"), args.synth, args.soundfont)
    try:
        write_wav(args.out, audio, args.samplerate)
    except OSError as error:
        fail(f"cannot write {args.out!r}: {error.strerror}")
    recorded = ""
    if args.record is not None:
        try:
            record_take(take, args.record, program=params.get("program"), channel=params.get("channel"))
        except OSError as error:
            fail(f"cannot write {args.record!r}: {error}")
        recorded = f"; the take in {args.record} and {args.record[:-4]}.abc"
    voices = f", {len(ensemble.voices)} voices ({ensemble.name})" if len(ensemble.voices) > 1 else ""
    print(f"wrote {args.out}: {len(audio) / args.samplerate:.1f} s, {take.bars} bars, {len(take.notes)} notes{voices}, "
          f"{len(take.tunes)} tune(s); {by}{recorded}", file=sys.stderr)
    return 0
