"""Where the notes go: a MIDI port, the built-in synth, recordings.

Every output receives each note ahead of time, with the absolute times it is scheduled for
(seconds on ``instrument.timing.clock``), from the model thread, in order of onset. An output
that must act at the moment itself (a MIDI port) hands the note to the timing thread; one that
can act ahead (the synth, which places notes at the exact sample; a recording) does so at once.
None of them may block the caller: no disk, network or slow lock inside ``schedule``.
An output that renders ahead of the moment says how far with ``lead_s`` (see ``lead_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from instrument.music.phrasing import ScheduledNote
from instrument.music.timbres import GM_TIMBRES, GmTimbre
from instrument.music.tunes import Tune


@dataclass(frozen=True)
class VoiceSound:
    """What an output needs to know of one voice of the ensemble at the start: where its notes go
    (``ScheduledNote.voice`` names it) and how it sounds."""

    voice: int  # 1 = the lead
    name: str  # "lead", "follow", "chords", "drone": a recording's track name
    channel: int  # MIDI channel 1..16
    timbre: GmTimbre  # the built-in sound's instrument
    program: int  # MIDI program sent on its channel at the start (-1: none)
    pan: float = 0.0  # -1 left .. 1 right (MIDI CC 10)


LEAD = VoiceSound(1, "lead", 1, GM_TIMBRES["harp"], -1)  # one voice, as a performance without an ensemble has


def pan_cc(pan: float) -> int:
    """MIDI CC 10's value for a pan of -1..1 (64 the centre)."""
    return max(0, min(127, round(64 + 63.5 * pan)))


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

    def release(self, voice: int, at: float, pitch: int | None = None) -> None:
        """End every note of ``voice`` sounding at ``at`` there, and drop its notes handed over
        before this call that would start at or after ``at`` (a drone at its tune's end, a voice
        muted). With ``pitch``: only its note of that pitch sounding at ``at`` ends (a musician's
        key let go, echoed: instrument/live/listen.py). Any thread, never blocks."""

    def close(self, at: float) -> None:
        """End of the performance: as panic, then release devices and finish files."""

    def status(self) -> str:
        """One line for the live view ("MIDI: virtual port 'folk-instrument'", "audio: off")."""


def lead_of(output: object) -> float:
    """How long before its time a note must reach ``output`` to sound on time: its ``lead_s``
    (the numpy synth renders some 25 ms ahead), 0 for outputs that act at the moment (a MIDI
    port's timing thread) or place notes in what they have not rendered yet (FluidSynth). The
    engine hands notes over that much earlier, so that none is late by design."""
    return float(getattr(output, "lead_s", 0.0))
