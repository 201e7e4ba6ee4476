"""``run.py gestures``: Myo Mapper streams without an armband: record, replay, synthetic."""

from __future__ import annotations

import argparse
import sys

from instrument.cli import seconds, seed

HELP = "record, replay or synthesise a Myo Mapper OSC gesture stream (play without an armband)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="record|replay|synthetic")
    record = sub.add_parser("record", help="record the OSC arriving on --port to FILE (JSON Lines with times)")
    record.add_argument("file", metavar="FILE")
    record.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a network)")
    record.add_argument("--port", type=int, default=5432, help="UDP port Myo Mapper sends to (default 5432)")
    record.add_argument("--seconds", type=seconds, help="stop after this long (default: at Ctrl-C)")
    replay = sub.add_parser("replay", help="send a recording as Myo Mapper would, with its original timing")
    replay.add_argument("file", metavar="FILE")
    replay.add_argument("--host", default="127.0.0.1", help="where the instrument listens (default 127.0.0.1)")
    replay.add_argument("--port", type=int, default=5432, help="its Myo port (default 5432)")
    replay.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    replay.add_argument("--speed", type=float, default=1.0, help="time scale: 2 plays twice as fast (default 1)")
    synth = sub.add_parser("synthetic", help="send a plausible synthetic stream (sweeps, EMG bursts, poses)")
    synth.add_argument("--host", default="127.0.0.1", help="where the instrument listens (default 127.0.0.1)")
    synth.add_argument("--port", type=int, default=5432, help="its Myo port (default 5432)")
    synth.add_argument("--seconds", type=seconds, help="stop after this long (default: at Ctrl-C)")
    synth.add_argument("--seed", type=seed, help="random seed (the same seed gives the same stream)")


def run(args: argparse.Namespace) -> int:
    from controllers import gestures
    from instrument.cli import fail

    if getattr(args, "seconds", None) is not None and args.seconds <= 0:
        fail(f"--seconds {args.seconds:g}: give a positive number of seconds")
    if not 0 <= args.port <= 65535:
        fail(f"--port {args.port}: a UDP port is 0..65535")
    if args.action == "record":
        print(f"recording OSC on {args.host}:{args.port} to {args.file}" + ("" if args.seconds else " (Ctrl-C stops)"), file=sys.stderr)
        count = gestures.record(args.file, args.host, args.port, args.seconds)
        print(f"recorded {count} messages to {args.file}", file=sys.stderr)
        return 0
    if args.action == "replay":
        if not args.speed > 0:
            fail(f"--speed {args.speed:g}: give a positive time scale, e.g. 1 or 0.5")
        events = gestures.load(args.file)
        count = gestures.send(gestures.looped(events, args.loop), args.host, args.port, args.speed)
    else:
        count = gestures.send(gestures.synthetic(args.seconds, seed=args.seed), args.host, args.port)
    print(f"sent {count} messages to {args.host}:{args.port}", file=sys.stderr)
    return 0
