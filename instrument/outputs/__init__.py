"""Where the notes go: a MIDI port, the built-in synth, recordings.

Every output receives each note ahead of time, with the absolute times it is scheduled for
(seconds on ``instrument.timing.clock``), from the model thread, in order of onset. An output
that must act at the moment itself (a MIDI port) hands the note to the timing thread; one that
can act ahead (the synth, which places notes at the exact sample; a recording) does so at once.
None of them may block the caller: no disk, network or slow lock inside ``schedule``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from instrument.music.phrasing import ScheduledNote
from instrument.music.tunes import Tune


@runtime_checkable
class Output(Protocol):
    """What the engine needs from every output."""

    name: str

    def start(self, at: float) -> None:
        """The performance starts at ``at`` (program change, MIDI start, open files)."""

    def schedule(self, note: ScheduledNote) -> None:
        """Play ``note`` at its times. Called ahead of time, never blocks."""

    def tune(self, number: int, tune: Tune) -> None:
        """A tune was finished (or cut off): for recordings and views."""

    def panic(self, at: float) -> None:
        """Silence now: drop notes not yet started, end the sounding ones (note-off, then All
        Notes Off on every channel used)."""

    def close(self, at: float) -> None:
        """End of the performance: as panic, then release devices and finish files."""

    def status(self) -> str:
        """One line for the live view ("MIDI: virtual port 'folk-instrument'", "audio: off")."""
