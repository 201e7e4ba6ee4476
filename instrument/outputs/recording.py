"""Every performance recorded (``--record FILE.mid``): a standard MIDI file and the tunes as ABC.

Notes are kept with the times they were scheduled for, not when some port sent them, so the
file is what the instrument meant to play. A take must survive the process: every
``CHECKPOINT_S`` seconds (and when a tune ends) a writer thread replaces FILE.mid and FILE.abc
with complete files of everything so far, each written beside it and renamed over it, so a
``kill -9`` or a power cut leaves readable files that lack at most the last seconds, never a
half-written one. The MIDI track is built incrementally: events before the present are encoded
once, and each checkpoint adds only the new ones and the note-offs still owed, so a long take
costs no more to save than a short one (no work grows with the take on any thread).

The file format is mido's: every event is a mido message encoded by mido, with mido's delta
times and chunks; our code decides only when each event falls. One voice is one track (format
0, as ever); an ensemble's take is format 1: a conductor track (tempo, a marker where each tune
begins) and one track per voice, named by its role, with its program and pan at its start. The whole file is not handed to
``MidiFile.save`` at each checkpoint because that encodes every event again: 0.14 s of the GIL
for an hour's take every two seconds, which the timing thread would wait out.

A write error (disk full, a file size limit, permissions) is logged in one line and retried at
the next checkpoint while the performance goes on; ``error`` says why if the final files could
not be written, so the command can exit with a failure.
"""

from __future__ import annotations

import io
import logging
import math
import os
import struct
import threading
from pathlib import Path
from typing import Callable, Sequence

import mido
from mido.midifiles.meta import encode_variable_int
from mido.midifiles.midifiles import write_chunk

from instrument.errors import UsageError, excerpt
from instrument.outputs import VoiceSound, pan_cc
from instrument.music.timbres import GM_TIMBRES
from instrument.timing import clock
from instrument.midi.ports import PRODUCT
from instrument.music.phrasing import ScheduledNote
from instrument.music.tunes import Tune

log = logging.getLogger(__name__)

FILE_TICKS_PER_QUARTER = 960  # the MIDI file's resolution (not MIDI clock's 24): at most 1 ms a tick, times within 0.5 ms
CHECKPOINT_S = 2.0  # a kill -9 loses at most this much of the take (plus a note's lookahead)
_MARKER, _OFF, _ON = 1, 2, 3  # order of events at the same tick: a tune's marker, note-offs, note-ons


def tune_title(number: int) -> str:
    """The title a tune gets in recordings (as ``generate`` names its tunes)."""
    return f"{PRODUCT} tune {number}"


class Recording:
    """An ``Output`` that keeps FILE.mid and FILE.abc up to date as the performance goes."""

    name = "record"

    def __init__(self, path: str | os.PathLike, *, program: int = -1, channel: int = 1, qpm: float = 120.0,
                 markers: bool = True, checkpoint_s: float = CHECKPOINT_S, now: Callable[[], float] = clock,
                 voices: Sequence[VoiceSound] = ()):
        """``qpm``: the tempo written in the file, so a DAW's bars match the start of the
        performance; note times are exact whatever the tempo did later. ``now``: the clock the
        notes' times are on (events before it are final). ``voices``: an ensemble's, a track
        each (without: one voice on ``channel`` with ``program``)."""
        self.path = Path(path)
        self.abc_path = self.path.with_suffix(".abc")
        self.voices = tuple(voices) or (VoiceSound(1, "lead", channel, GM_TIMBRES["harp"], program),)
        self.program = self.voices[0].program
        self.channel = self.voices[0].channel
        several = len(self.voices) > 1
        self._track_of = {v.voice: i + 1 for i, v in enumerate(self.voices)} if several else {}
        self.markers = markers
        self.checkpoint_s = checkpoint_s
        self.progress: Callable[[], tuple[int, Tune] | None] | None = None  # the tune being written, if known
        self.tunes_written = 0
        self.notes = 0
        self.error: str | None = None  # why the files on disk are not the whole take (None: they are)
        self._now = now
        self._tempo = round(60e6 / qpm)  # microseconds per quarter note
        self._resolution = FILE_TICKS_PER_QUARTER * max(1, math.ceil(self._tempo / 1000 / FILE_TICKS_PER_QUARTER))
        self._origin: float | None = None
        self._lock = threading.Lock()  # short: the pending notes, no I/O, nothing that grows with the take
        self._pending: list[list] = []  # [note, on written?, off time, index, restruck?] of notes not yet wholly in the track
        self._marked: set[int] = set()
        tracks = 1 + len(self._track_of)
        self._tracks = [bytearray() for _ in range(tracks)]  # final events, encoded (written by the writer thread only)
        self._last_ticks = [0] * tracks
        self._sounding: dict[tuple[int, int], list] = {}  # (channel, pitch) -> its pending entry
        self._abc: dict[int, str] = {}  # tune number -> its ABC text, finished tunes
        self._failing = False
        self._saving = threading.Lock()  # the writer thread and the final save take turns
        self._closed = False
        try:
            self.abc_path.write_text("")  # fail now, not at the end of the performance
            if not os.access(self.path.parent, os.W_OK):
                raise PermissionError(f"cannot write in {self.path.parent}")
        except OSError as error:
            raise UsageError(f"--record {path}: cannot write there ({error}); choose another file") from None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="take-writer", daemon=True)
        self._writer.start()

    # -- the engine's side (never waits on the disk) ----------------------------------------
    def start(self, at: float) -> None:
        self._origin = at

    def schedule(self, note: ScheduledNote) -> None:
        with self._lock:
            if self._closed:
                return
            key = (note.channel, note.pitch)
            earlier = self._sounding.get(key)
            if earlier is not None and earlier[2] > note.on:  # struck again: the first ends (as the port plays it)
                earlier[2], earlier[4] = max(note.on, earlier[0].on), True
            entry = [note, False, note.off, self.notes, False]
            self._pending.append(entry)
            self._sounding[key] = entry
            self.notes += 1

    def tune(self, number: int, tune: Tune) -> None:
        with self._lock:
            if number in self._abc or self._closed:
                return
            self._abc[number] = tune.to_abc(number, title=tune_title(number))
        self._wake.set()  # a finished tune is on disk at once

    def panic(self, at: float) -> None:
        """Notes not yet started are dropped; sounding ones end at ``at``."""
        with self._lock:
            self._cut(at)

    def release(self, voice: int, at: float, pitch: int | None = None) -> None:
        """The voice's notes not yet started are dropped; its sounding ones end at ``at`` (with
        ``pitch``: only its sounding note of that pitch)."""
        with self._lock:
            self._cut(at, voice, pitch)

    def close(self, at: float) -> None:
        """End at ``at`` (as panic) and write the final files. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True  # later notes are not kept
            self._cut(at)
        self._stop.set()
        self._wake.set()
        self._writer.join(10.0)
        self._save(final_at=at)

    def status(self) -> str:
        failing = f"; NOT SAVED: {self.error}" if self.error else ""
        return f"recording: {self.path} ({self.notes} notes, {len(self._abc)} tunes){failing}"

    # -- the writer thread -------------------------------------------------------------------
    def _write_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.checkpoint_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._save(final_at=None)
            except Exception:  # the writer outlives anything; the performance never hears of it
                log.exception("recording: saving the take failed")

    def _save(self, final_at: float | None) -> None:
        """Write both files as they stand (``final_at``: the take is over, at that time)."""
        with self._saving:
            self._save_now(final_at)

    def _save_now(self, final_at: float | None) -> None:
        midi = self._midi_bytes(final_at)
        abc, tunes = self._abc_text(final=final_at is not None)
        try:
            for path, data in ((self.path, midi), (self.abc_path, abc.encode("utf-8"))):
                target = path
                _replace(path, data)
        except OSError as error:
            self.error = f"cannot write {target}: {excerpt(error.strerror or error, 160)}"
            if not self._failing:  # one line; the command's summary says it again if it stays so
                log.error("recording: %s; %s", self.error, "the take is NOT saved" if final_at is not None else
                          f"the performance goes on, trying again every {self.checkpoint_s:g} s")
            self._failing = True
            return
        if self._failing:
            log.warning("recording: %s can be written again", self.path)
        self._failing, self.error = False, None
        self.tunes_written = tunes

    def _abc_text(self, final: bool) -> tuple[str, int]:
        """The ABC file's text and how many tunes it holds (the one being written too, unless final)."""
        with self._lock:
            texts = dict(self._abc)
        progress = None if final or self.progress is None else self.progress()
        if progress is not None and progress[0] not in texts and progress[1].body:
            texts[progress[0]] = progress[1].to_abc(progress[0], title=tune_title(progress[0]))
        return "\n".join(texts[n] for n in sorted(texts)), len(texts)

    def _midi_bytes(self, final_at: float | None) -> bytes:
        horizon = math.inf if final_at is not None else self._now()
        with self._lock:
            done = self._settle(horizon)  # final events, in order
            owed = [] if final_at is not None else self._settle(math.inf, dry=True)  # what is still to come
        for tick, _, track, message in done:  # (a tick rounded up to make a note last may pass a later event's)
            tick = max(tick, self._last_ticks[track])
            self._tracks[track] += _event(tick - self._last_ticks[track], message)
            self._last_ticks[track] = tick
        tails = [bytearray() for _ in self._tracks]
        lasts = list(self._last_ticks)
        for tick, _, track, message in owed:
            tick = max(tick, lasts[track])
            tails[track] += _event(tick - lasts[track], message)
            lasts[track] = tick
        end = self._tick(final_at) if final_at is not None else max(lasts)
        file = io.BytesIO()
        # as mido's MidiFile writes it: format 0 for one track, 1 for a conductor track and a track per voice
        write_chunk(file, b"MThd", struct.pack(">hhh", 0 if len(self._tracks) == 1 else 1, len(self._tracks), self._resolution))
        for track, (events, tail) in enumerate(zip(self._tracks, tails)):
            tail += _event(max(0, end - lasts[track]), mido.MetaMessage("end_of_track"))
            head = b"".join(_event(0, m) for m in self._head(track))
            write_chunk(file, b"MTrk", head + bytes(events) + tail)
        return file.getvalue()

    def _head(self, track: int) -> list[mido.Message | mido.MetaMessage]:
        """The events at the start of a track: the conductor's name and tempo; a voice's name,
        program and pan."""
        head: list[mido.Message | mido.MetaMessage] = []
        if track == 0:
            head += [mido.MetaMessage("track_name", name=PRODUCT), mido.MetaMessage("set_tempo", tempo=self._tempo)]
            if self._track_of:
                return head
        voice = self.voices[max(0, track - 1)]
        if track:
            head.append(mido.MetaMessage("track_name", name=voice.name))
        if voice.program >= 0:
            head.append(mido.Message("program_change", channel=voice.channel - 1, program=voice.program & 0x7F))
        if track:
            head.append(mido.Message("control_change", channel=voice.channel - 1, control=10, value=pan_cc(voice.pan)))
        return head

    # -- pending notes (under the lock) ------------------------------------------------------
    def _cut(self, at: float, voice: int | None = None, pitch: int | None = None) -> None:
        keep = []
        for entry in self._pending:
            note, written, off = entry[:3]
            if voice is not None and note.voice != voice or pitch is not None and (note.pitch != pitch or note.on >= at):
                keep.append(entry)
                continue
            if not written and note.on >= at:
                if self._sounding.get((note.channel, note.pitch)) is entry:
                    del self._sounding[(note.channel, note.pitch)]
                continue  # not started: dropped
            entry[2] = min(off, max(at, note.on))
            keep.append(entry)
        self._pending = keep

    def _settle(self, horizon: float, dry: bool = False) -> list[tuple[int, int, int, mido.Message | mido.MetaMessage]]:
        """The events of pending notes up to ``horizon``, sorted, each with its track; unless
        ``dry``, they are marked written and notes wholly written leave the pending list."""
        events = []
        keep = []
        for entry in self._pending:
            note, written, off, index, restruck = entry
            channel = note.channel - 1
            track = self._track_of.get(note.voice, 1 if self._track_of else 0)
            on = self._tick(note.on)
            if not written and note.on <= horizon:
                if self.markers and note.tune not in self._marked:
                    if not dry:
                        self._marked.add(note.tune)
                    events.append((on, _MARKER, index, 0, 0, mido.MetaMessage("marker", text=tune_title(note.tune))))
                events.append((on, _ON, index, 0, track, mido.Message("note_on", channel=channel, note=note.pitch,
                                                                      velocity=note.velocity)))
                written = True
            if written and off <= horizon:
                # a note lasts a tick at least, unless the same pitch is struck again: then it ends
                # where that starts, right after its own note-on if both fall on one tick
                off_tick = self._tick(off) if restruck else max(self._tick(off), on + 1)
                rank = (_ON, index, 1) if off_tick == on else (_OFF, index, 0)
                events.append((off_tick, *rank, track, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
                if not dry and self._sounding.get((note.channel, note.pitch)) is entry:
                    del self._sounding[(note.channel, note.pitch)]
                continue
            if not dry:
                entry[1] = written
            keep.append(entry)
        if not dry:
            self._pending = keep
        events.sort(key=lambda e: e[:4])
        return [(tick, rank, track, message) for tick, rank, _, _, track, message in events]

    def _tick(self, t: float) -> int:
        origin = self._origin if self._origin is not None else t
        return max(0, round((t - origin) * 1e6 / self._tempo * self._resolution))


def _event(delta: int, message: mido.Message | mido.MetaMessage) -> bytes:
    """One track event as mido encodes it: the delta time in ticks, then the message."""
    return bytes(encode_variable_int(delta)) + bytes(message.bin())


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it over ``path``: never a half-written file."""
    part = path.with_name(path.name + ".part")
    try:
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except OSError:
        try:
            part.unlink()
        except OSError:
            pass
        raise
