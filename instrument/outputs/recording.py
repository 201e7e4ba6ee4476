"""Every performance recorded (``--record FILE.mid``): a standard MIDI file and the tunes as ABC.

Notes are kept with the times they were scheduled for, not when some port sent them, so the
file is what the instrument meant to play. ``schedule`` only appends to a list; the MIDI file
is written at ``close``, and each tune's ABC is appended by a background thread as soon as
the tune is finished, so a crash loses at most the MIDI file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import threading
from pathlib import Path

import mido

from instrument.errors import UsageError
from instrument.midi.ports import PRODUCT
from instrument.music.phrasing import ScheduledNote
from instrument.music.tunes import Tune

log = logging.getLogger(__name__)

FILE_TICKS_PER_QUARTER = 960  # the MIDI file's resolution (not MIDI clock's 24): at most 1 ms a tick, times within 0.5 ms


def tune_title(number: int) -> str:
    """The title a tune gets in recordings (as ``generate`` names its tunes)."""
    return f"{PRODUCT} tune {number}"


class Recording:
    """An ``Output`` that writes FILE.mid at the end and FILE.abc as it goes."""

    name = "record"

    def __init__(self, path: str | os.PathLike, *, program: int = -1, channel: int = 1, qpm: float = 120.0,
                 markers: bool = True):
        """``qpm``: the tempo written in the file, so a DAW's bars match the start of the
        performance; note times are exact whatever the tempo did later."""
        self.path = Path(path)
        self.abc_path = self.path.with_suffix(".abc")
        self.program = program
        self.channel = channel
        self.qpm = qpm
        self.markers = markers
        self.tunes_written = 0
        self._notes: list[ScheduledNote] = []  # in order of onset
        self._lock = threading.Lock()  # short: list appends and the panic cut, no I/O
        self._longest = 0.0
        self._start: float | None = None
        self._closed = False
        try:
            self.abc_path.write_text("")  # fail now, not at the end of the performance
            if not os.access(self.path.parent, os.W_OK):
                raise PermissionError(f"cannot write in {self.path.parent}")
        except OSError as error:
            raise UsageError(f"--record {path}: cannot write there ({error}); choose another file") from None
        self._abc: queue.SimpleQueue[tuple[int, Tune] | None] = queue.SimpleQueue()
        self._seen: set[int] = set()
        self._writer = threading.Thread(target=self._write_abc, name="abc-writer", daemon=True)
        self._writer.start()

    def start(self, at: float) -> None:
        self._start = at

    def schedule(self, note: ScheduledNote) -> None:
        with self._lock:
            if self._closed:
                return
            self._notes.append(note)
            self._longest = max(self._longest, note.off - note.on)

    def tune(self, number: int, tune: Tune) -> None:
        if number not in self._seen and not self._closed:
            self._seen.add(number)
            self._abc.put((number, tune))

    def panic(self, at: float) -> None:
        """Notes not yet started are dropped; sounding ones end at ``at``."""
        with self._lock:
            notes = self._notes
            first = len(notes)  # notes come in onset order: only the tail can still sound
            while first > 0 and notes[first - 1].on >= at - self._longest:
                first -= 1
            notes[first:] = [n if n.off <= at else dataclasses.replace(n, off=at) for n in notes[first:] if n.on < at]

    def close(self, at: float) -> None:
        """End at ``at`` (as panic), write the MIDI file, finish the ABC. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True  # later notes are not kept
        self.panic(at)
        with self._lock:
            notes = list(self._notes)
        try:
            self._write_midi(notes, at)
        finally:
            self._abc.put(None)
            self._writer.join(10.0)

    def status(self) -> str:
        return f"recording: {self.path} ({len(self._notes)} notes, {len(self._seen)} tunes)"

    # -- writing ----------------------------------------------------------------------------
    def _write_abc(self) -> None:
        """Background: append each finished tune to the ABC file, flushed to disk at once."""
        while (item := self._abc.get()) is not None:
            number, tune = item
            try:
                with self.abc_path.open("a", encoding="utf-8") as f:
                    f.write(("\n" if self.tunes_written else "") + tune.to_abc(number, title=tune_title(number)))
                    f.flush()
                    os.fsync(f.fileno())
                self.tunes_written += 1
            except OSError:
                log.exception("could not write tune %d to %s", number, self.abc_path)

    def _write_midi(self, notes: list[ScheduledNote], end: float) -> None:
        tempo = round(60e6 / self.qpm)  # microseconds per quarter note
        resolution = FILE_TICKS_PER_QUARTER * max(1, math.ceil(tempo / 1000 / FILE_TICKS_PER_QUARTER))
        origin = self._start if self._start is not None else min((n.on for n in notes), default=end)

        def tick(t: float) -> int:
            return max(0, round((t - origin) * 1e6 / tempo * resolution))

        events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []  # (tick, order, message)
        if self.program >= 0:
            events.append((0, 0, mido.Message("program_change", channel=self.channel - 1, program=self.program & 0x7F)))
        marked: set[int] = set()
        for note, off in _without_overlaps(notes):
            on_tick = tick(note.on)
            off_tick = max(tick(off), on_tick + 1)
            if self.markers and note.tune not in marked:
                marked.add(note.tune)
                events.append((on_tick, 1, mido.MetaMessage("marker", text=tune_title(note.tune))))
            channel = note.channel - 1
            events.append((on_tick, 3, mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)))
            events.append((off_tick, 2, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))

        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=PRODUCT, time=0))
        track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
        now = 0
        for at, _, message in events:
            track.append(message.copy(time=at - now))
            now = at
        track.append(mido.MetaMessage("end_of_track", time=max(0, tick(end) - now)))
        song = mido.MidiFile(type=0, ticks_per_beat=resolution)
        song.tracks.append(track)
        part = self.path.with_name(self.path.name + ".part")
        song.save(part)
        os.replace(part, self.path)  # never a half-written file under the real name


def _without_overlaps(notes: list[ScheduledNote]) -> list[tuple[ScheduledNote, float]]:
    """Each note with its end, a note ending where the same pitch on its channel starts again
    (as the MIDI port plays it): the file never holds overlapping duplicates."""
    ordered = sorted(notes, key=lambda n: n.on)
    ends = [n.off for n in ordered]
    last: dict[tuple[int, int], int] = {}
    for i, note in enumerate(ordered):
        key = (note.channel, note.pitch)
        j = last.get(key)
        if j is not None and ends[j] > note.on:
            ends[j] = note.on
        last[key] = i
    return list(zip(ordered, ends))
