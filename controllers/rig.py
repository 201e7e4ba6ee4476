"""Every controller of a performance, opened from the command line and a patch: the one object
``run.py play`` uses. Data flows controllers -> parameters -> engine: nothing here touches the
engine, controllers only call ``Parameters.set``/``fire``."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Callable

from controllers.router import Router
from controllers.patch import Patch, load_patch
from controllers.report import Reporter, new_activity
from instrument.errors import UsageError
from instrument.live.params import Parameters
from patches import DEFAULT as DEFAULT_PATCH

log = logging.getLogger(__name__)



def add_controller_arguments(parser: argparse.ArgumentParser) -> None:
    """The controller options of ``play`` (and of anything else that opens a ``Controllers``)."""
    group = parser.add_argument_group("controllers")
    group.add_argument("--patch", metavar="FILE", help="YAML patch: mappings, actions, start state "
                       "(default patches/default.yaml); edits are applied when the file is saved")
    group.add_argument("--osc-host", default="127.0.0.1",
                       help="address the OSC and Myo ports listen on (default 127.0.0.1; 0.0.0.0 for a phone on the network)")
    group.add_argument("--osc-port", type=int, default=9000, help="OSC control port (default 9000)")
    group.add_argument("--no-osc", action="store_true", help="no OSC control port")
    group.add_argument("--midi-in", metavar="virtual|NAME|none",
                       help="MIDI input: a virtual port 'folk-instrument in' (default where MIDI works), "
                            "the output port whose name contains NAME, or none")
    group.add_argument("--midi-in-api", help="auto, alsa, jack, ... (default: as --midi-api, else auto)")
    group.add_argument("--myo-port", type=int, default=5432, help="port for Myo Mapper's OSC stream (default 5432)")
    group.add_argument("--no-myo", action="store_true", help="no Myo gesture port")
    group.add_argument("--gestures", metavar="synthetic|FILE",
                       help="feed a synthetic gesture stream or a recording (looped) into our own Myo port")


def _port(value: int, flag: str) -> int:
    if not 0 <= value <= 65535:
        raise UsageError(f"{flag} {value}: a UDP port is 0..65535")
    return value


class Controllers:
    """The patch, its watcher, and the OSC, MIDI and Myo inputs it drives."""

    def __init__(self, params: Parameters, patch: Patch, patch_path: Path):
        self.params = params
        self.router = Router(params, patch)
        self.patch_path = patch_path
        self.activity = new_activity()  # (time, source, description), newest last, for the live view
        self.osc = self.midi = self.myo = self.watcher = self.feed = None
        self._midi_off = ""
        self._closed = False

    @property
    def patch(self) -> Patch:
        return self.router.patch

    @classmethod
    def open(cls, params: Parameters, args: argparse.Namespace) -> "Controllers":
        """Load the patch (UsageError with FILE:LINE if it is wrong), apply its start state,
        open the inputs the arguments ask for and start watching the patch file."""
        path = Path(getattr(args, "patch", None) or DEFAULT_PATCH)
        patch = load_patch(path, params.specs.values())  # the specs fitted to the model, when it is known
        patch.apply_start(params)
        self = cls(params, patch, path)
        try:
            self._open_inputs(args)
        except BaseException:
            self.close()
            raise
        return self

    def _open_inputs(self, args: argparse.Namespace) -> None:
        from controllers.watcher import PatchWatcher

        host = getattr(args, "osc_host", None) or "127.0.0.1"
        if not getattr(args, "no_osc", False):
            from controllers.osc import OscControl

            self.osc = OscControl(self.params, self.router, host, _port(getattr(args, "osc_port", 9000), "--osc-port"),
                                  Reporter("OSC", self.activity), learn=self.learn)
        midi_in = getattr(args, "midi_in", None)
        api = getattr(args, "midi_in_api", None) or getattr(args, "midi_api", None) or "auto"
        self._midi_off = "MIDI in: off (--midi-in none)"
        if midi_in is None:
            from instrument.midi.ports import midi_available

            available, why = midi_available()
            midi_in = "virtual" if available else "none"
            if not available:
                self._midi_off = f"MIDI in: off ({why})"
        if midi_in.strip().lower() != "none":
            from controllers.midi_in import MidiInput

            self.midi = MidiInput(self.params, self.router, midi_in, api, reporter=Reporter("MIDI in", self.activity),
                                  on_program=self._program)
        gestures = getattr(args, "gestures", None)
        if not getattr(args, "no_myo", False):
            from controllers.myo import MyoInput

            self.myo = MyoInput(self.params, self.router, host, _port(getattr(args, "myo_port", 5432), "--myo-port"),
                                Reporter("Myo", self.activity))
            if gestures:
                from controllers.gestures import GestureFeed

                self.feed = GestureFeed(gestures, "127.0.0.1" if host in ("0.0.0.0", "") else host, self.myo.port)
        elif gestures:
            raise UsageError("--gestures feeds the Myo port, which --no-myo closes; drop one of them")
        self.watcher = PatchWatcher(self.patch_path, self._loaded, specs=self.params.specs.values())

    def learn(self, name: str) -> str:
        """Arm MIDI learn for parameter ``name`` (also ``/midi/learn NAME`` over OSC)."""
        if self.midi is None:
            raise UsageError("MIDI learn needs a MIDI input (--midi-in)")
        return self.midi.learn(name)

    def _program(self, path: Path) -> None:
        if self.watcher is not None:
            self.watcher.switch(path)

    def _loaded(self, patch: Patch, switched: bool) -> None:
        """A saved patch (mappings only: the performance's state is left as it is) or a patch
        switched to by a program change (its start state too)."""
        if switched:
            patch.apply_start(self.params)
        self.router.swap(patch)
        self.activity.append((time.time(), "patch", f"{'switched to' if switched else 'reloaded'} {patch.name}"))

    def publish_status(self, performance_status: Callable[[], dict]) -> None:
        """Have ``/state`` report ``performance_status()`` and every controller's line under ``status``."""
        if self.osc is not None:
            self.osc.status_of = lambda: {**performance_status(), "controllers": self.status()}

    def status(self) -> list[str]:
        """One line per controller for the live view."""
        patch = self.patch
        line = f"Patch {patch.name} ({self.watcher.path if self.watcher else self.patch_path}): " \
               f"{patch.mapping_count} mappings, {patch.action_count} actions"
        if self.watcher is not None and self.watcher.last_error:
            line += f"; last save NOT loaded: {self.watcher.last_error}"
        lines = [line]
        if self.osc is not None:
            lines.append(self.osc.status())
        if self.midi is not None:
            lines.append(self.midi.status())
        elif self._midi_off:
            lines.append(self._midi_off)
        if self.myo is not None:
            lines.append(self.myo.status())
        if self.feed is not None:
            lines.append(f"Gestures: feeding {self.feed.source} into the Myo port")
        return lines

    def close(self) -> None:
        """Stop every thread and close every port. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        for part in (self.feed, self.watcher, self.osc, self.midi, self.myo):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    log.exception("closing a controller failed")
