"""An offline performance: the same composer and phrasing as live play, rendered to audio
without any device (for takes, tests and machines with no sound card), and written as a take
(``.mid`` and ``.abc``) by the recording live play writes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from instrument.model import vocab
from instrument.live.composer import Composer, ComposedNote, Release
from instrument.live.engine import Limits
from instrument.live.ensemble import SOLO, Ensemble
from instrument.live.performance import phrasing_for, voice_sounds
from instrument.model.network import FolkRNN
from instrument.music.phrasing import ScheduledNote, seconds_per_quarter
from instrument.live.params import Parameters
from instrument.music.tunes import Tune
from instrument.outputs import VoiceSound

MAX_TOKENS = 200_000  # a model that never writes a note still ends


@dataclass
class Take:
    """What an offline performance produced."""

    notes: list[ScheduledNote]
    tunes: list[tuple[int, Tune]] = field(default_factory=list)
    seconds: float = 0.0  # length of the music: to the end of its last bar
    bars: int = 0
    voices: list[VoiceSound] = field(default_factory=list)  # an ensemble's, as the outputs take them
    qpm: float = 120.0  # the tempo it started at (the recording's)


def perform(model: FolkRNN, params: Parameters, limits: Limits, seed: int | None = None, model_path: str | None = None,
            ensemble: Ensemble = SOLO) -> Take:
    """Compose and place notes until ``limits`` (time starts at 0 s), every voice of ``ensemble``
    placed in order of time, as the engine places them live."""
    composer = Composer(model, params, seed=seed, model_path=model_path, ensemble=ensemble)
    sounds = voice_sounds(ensemble, params)
    composer.programs = {v.voice: v.timbre.program for v in sounds}
    phrasing = phrasing_for(params, ensemble)
    meter = params.get("meter.next")
    qpm = 60.0 / seconds_per_quarter(params.get("tempo"), meter if meter != "auto" else "4/4")
    notes: list[ScheduledNote] = []
    releases: list[tuple[int, float]] = []
    waiting: list[ComposedNote | Release] = []
    end_beat = 0.0
    ended_at = None  # the beat where a limit ended the take
    done = False
    while not done and composer.tokens_sampled < MAX_TOKENS:
        silent_end = limits.silent_end(composer.head, composer.meter, phrasing, 0.0)
        past = silent_end is not None  # composed (or rests known) past the end: it ends there
        if past:
            end_beat = max(end_beat, silent_end)
            ended_at = silent_end
            done = True
        else:
            waiting += composer.next_notes()
        waiting.sort(key=lambda n: (n.beat, isinstance(n, Release), n.voice))
        # the lead is composed ahead of its accompaniment; what is placed is what can be no earlier
        ready = list(waiting) if past else \
            [n for n in waiting if n.beat <= composer.head - composer.lookahead_beats + 1e-9 or composer.tune.ended]
        for note in ready:
            waiting.remove(note)
            if isinstance(note, Release):
                releases.append((note.voice, phrasing.tempo.time_at(note.beat)))
                continue
            if limits.beyond(note, phrasing, 0.0):
                ended_at = note.beat
                done = True
                break
            if params.get(f"voice.{note.voice}.mute"):
                phrasing.place(note)  # the lead's bars still count
                continue
            notes.append(phrasing.place(note))
            if note.voice == 1:
                bar_start = note.beat - note.bar_offset
                end_beat = max(end_beat, bar_start + vocab.METER_EIGHTHS[note.meter] / 2, note.beat + note.duration)
    composer.cut()
    end = phrasing.tempo.time_at(end_beat)
    notes = _held(notes, releases, end)
    bars = limits.bars_heard(phrasing, ended_at, composer.meter) if ended_at is not None else phrasing.bars
    return Take(notes, list(composer.finished), end, bars, sounds if len(sounds) > 1 else [], qpm)


def _held(notes: list[ScheduledNote], releases: list[tuple[int, float]], end: float) -> list[ScheduledNote]:
    """Notes as they sound: a note ends where its voice struck the same pitch again or was
    released (the drone at its tune's end), and nothing sounds past the take's ``end``."""
    out: list[ScheduledNote] = []
    later: dict[tuple[int, int], float] = {}
    for note in sorted(notes, key=lambda n: n.on, reverse=True):
        key = (note.voice, note.pitch)
        off = min(note.off, later.get(key, note.off), end if note.off > end else note.off)
        off = min([off] + [at for voice, at in releases if voice == note.voice and note.on < at < off])
        later[key] = note.on
        if off > note.on:
            out.append(replace(note, off=off) if off != note.off else note)
    return sorted(out, key=lambda n: n.on)


def render_take(take: Take, samplerate: int = 48000, timbre: str = "harp", synth: str = "auto",
                soundfont: str | None = None) -> tuple[np.ndarray, str]:
    """The take as float32 audio (frames, 2), at least as long as its bars, tail included, rendered
    by the sound ``play`` would use (``instrument.outputs.sound``) and normalised to its peak of
    ``RENDER_PEAK_DBFS``; and what rendered it."""
    from instrument.music.timbres import find_timbre
    from instrument.outputs.sound import RENDER_PEAK_DBFS, normalise_peak, render_notes

    audio, by = render_notes(take.notes, find_timbre(timbre), synth, samplerate, start=0.0, soundfont=soundfont,
                             voices=take.voices)
    frames = int(round(take.seconds * samplerate))
    if len(audio) < frames:
        audio = np.concatenate([audio, np.zeros((frames - len(audio), audio.shape[1]), dtype=audio.dtype)])
    audio, gain_db = normalise_peak(audio)
    return audio, f"{by}; peak normalised to {RENDER_PEAK_DBFS:g} dBFS ({gain_db:+.1f} dB)"


def record_take(take: Take, path: str | Path, program: int = -1, channel: int = 1) -> None:
    """Write the take as ``play --record`` writes one: ``path`` (.mid, a track per voice) and
    its tunes beside it (.abc, a ``V:`` per voice), through the same ``Recording``."""
    from instrument.outputs.recording import Recording

    recording = Recording(path, program=program, channel=channel, qpm=take.qpm, voices=take.voices,
                          now=lambda: 0.0, checkpoint_s=3600.0)
    recording.start(0.0)
    for note in take.notes:
        recording.schedule(note)
    for number, tune in take.tunes:
        recording.tune(number, tune)
    recording.close(max([take.seconds] + [n.off for n in take.notes]))
    if recording.error:
        raise OSError(recording.error)
