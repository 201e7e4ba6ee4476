"""Placeholder until the controllers land: play runs with no controllers attached."""

from __future__ import annotations

import argparse
import collections


def add_controller_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("controllers")
    group.add_argument("--patch", help="patch file (not yet used)")
    group.add_argument("--no-osc", action="store_true", help="no OSC server")
    group.add_argument("--osc-port", type=int, default=9000)
    group.add_argument("--no-myo", action="store_true", help="no Myo listener")
    group.add_argument("--midi-in", help="MIDI input port (not yet used)")


class Controllers:
    activity: collections.deque = collections.deque()

    @classmethod
    def open(cls, params, args) -> "Controllers":
        return cls()

    def status(self) -> list[str]:
        return []

    def close(self) -> None:
        pass
