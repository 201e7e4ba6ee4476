"""Options that ``play`` and ``render`` share: the model, the run length and the start state."""

from __future__ import annotations

import argparse

from pathlib import Path
from typing import Iterable

from instrument.model.catalog import MODEL_HELP
from instrument.cli import fail, seconds, seed
from instrument.live.engine import Limits
from instrument.live.ensemble import SOLO, Ensemble
from instrument.model.generate import parse_meter, parse_mode
from instrument.live.params import ParamError, Parameters, ParamSpec
from instrument.music.timbres import DEFAULT as DEFAULT_TIMBRE, timbre_table
from instrument.outputs.sound import SYNTHS


def add_performance_arguments(parser: argparse.ArgumentParser, default_bars: int = 0) -> None:
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--seed", type=seed, help="random seed: the same seed and settings give the same performance")
    length = parser.add_argument_group("length (default: play until stopped)" if not default_bars else f"length (default: {default_bars} bars)")
    length.add_argument("--bars", type=int, default=default_bars, help="stop after this many bars")
    length.add_argument("--tunes", type=int, default=0, help="stop after this many tunes")
    length.add_argument("--seconds", type=seconds, default=0.0, help="stop after this many seconds")
    start = parser.add_argument_group("start state (a patch may set these too; these win)")
    start.add_argument("--tempo", type=float, help="beats per minute (the beat follows the meter)")
    start.add_argument("--meter", help="meter of every tune, e.g. 6/8 (default: the model draws it)")
    start.add_argument("--mode", help="mode of every tune: maj, min, dor, mix (default: the model draws it)")
    start.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    start.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="any live parameter's start value, e.g. --set bias.scale=dorian or --set voice.2.cohesion=1 "
                            "(repeatable)")
    start.add_argument("--ensemble", action=_EnsembleAction, metavar="solo|duo|trio|pipes|FILE.yaml|list",
                       help="the voices that play: solo (the default: one line), duo (fiddle lead, flute follower), "
                            "trio (duo and a guitar's chords), pipes (uilleann pipes and their drone), an ensemble file; "
                            "'--ensemble list' shows them (default: the patch's ensemble:, else solo)")
    sound = parser.add_argument_group("built-in sound")
    sound.add_argument("--timbre", action=_TimbreAction, metavar="NAME|list",
                       help=f"instrument: fiddle, flute, tin-whistle, uilleann-pipes, accordion, concertina, harp, banjo, "
                            f"guitar, piano, ... ('--timbre list' shows all; default {DEFAULT_TIMBRE})")
    sound.add_argument("--synth", choices=SYNTHS, default="auto",
                       help="auto: FluidSynth where libfluidsynth and a GM SoundFont are installed, else the numpy synth")
    sound.add_argument("--soundfont", metavar="FILE.sf2", help="SoundFont for FluidSynth (default: the system's General MIDI one)")


class _TimbreAction(argparse.Action):
    """``--timbre list`` prints the list and exits; a name is checked (and its spelling taken) by
    the ``timbre`` parameter when the start state is set, as from a patch or a controller."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value.strip().lower() == "list":
            print(timbre_table())
            parser.exit(0)
        setattr(namespace, self.dest, value)


class _EnsembleAction(argparse.Action):
    """``--ensemble list`` prints the shipped ensembles and exits; a name or file is read later."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value.strip().lower() == "list":
            from controllers.patch import ensemble_table

            print(ensemble_table())
            parser.exit(0)
        setattr(namespace, self.dest, value)


def choose_ensemble(args: argparse.Namespace, patch: str | Path | None = None) -> Ensemble:
    """``--ensemble`` (a shipped name or a file), else the patch's ``ensemble:``, else solo.
    A mistake in either file is a usage error naming its line."""
    from controllers.patch import find_ensemble, load_patch

    if getattr(args, "ensemble", None):
        return find_ensemble(args.ensemble)
    if patch is not None:
        found = load_patch(patch, own_ensemble=True).ensemble  # read again, whole, once the parameters are known
        if found is not None:
            return found
    return SOLO


def ensemble_params(specs: Iterable[ParamSpec], ensemble: Ensemble) -> Parameters:
    """The parameters of a performance of ``ensemble``: ``specs`` and every voice's own, each
    voice's start values set (a patch's start state and the command line's come after)."""
    specs = tuple(specs)
    params = Parameters((*specs, *ensemble.param_specs(specs)))
    for name, value in ensemble.start_values():
        params.set(name, value, source=f"ensemble {ensemble.name}", smoothing_ms=0, clamp=False)
    return params


def limits_from_args(args: argparse.Namespace) -> Limits:
    if args.bars < 0 or args.tunes < 0 or args.seconds < 0:
        fail("--bars, --tunes and --seconds must not be negative")
    return Limits(bars=args.bars, tunes=args.tunes, seconds=args.seconds)


def apply_start_state(params: Parameters, args: argparse.Namespace) -> None:
    """Set the start values the command line asks for (no glide: a start state)."""
    wanted: list[tuple[str, object]] = []
    if args.tempo is not None:
        wanted.append(("tempo", args.tempo))
    if args.meter:
        wanted.append(("meter.next", parse_meter(args.meter)))
    if args.mode:
        wanted.append(("mode.next", parse_mode(args.mode)))
    if args.temperature is not None:
        wanted.append(("temperature", args.temperature))
    if args.timbre is not None:
        wanted.append(("timbre", args.timbre))
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            fail(f"--set takes NAME=VALUE, not {item!r}")
        wanted.append((name.strip(), _parse_value(value.strip())))
    for name, value in wanted:
        try:
            params.set(name, value, source="command line", smoothing_ms=0, clamp=False)
        except ParamError as error:
            fail(f"{error}; 'run.py play --help' and the README list the parameters")


def _parse_value(text: str) -> object:
    """``1.5`` -> 1.5, ``on`` stays a string (the parameter decides), ``1,3,5`` -> a list."""
    if "," in text:
        return [_parse_value(part) for part in text.split(",") if part]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
