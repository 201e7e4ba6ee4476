"""An offline performance: the same composer and phrasing as live play, rendered to audio
without any device (for takes, tests and machines with no sound card)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from instrument.model import vocab
from instrument.live.composer import Composer
from instrument.live.engine import Limits
from instrument.music.phrasing import Phrasing
from instrument.model.network import FolkRNN
from instrument.music.phrasing import ScheduledNote
from instrument.live.params import Parameters
from instrument.music.tunes import Tune

MAX_TOKENS = 200_000  # a model that never writes a note still ends


@dataclass
class Take:
    """What an offline performance produced."""

    notes: list[ScheduledNote]
    tunes: list[tuple[int, Tune]] = field(default_factory=list)
    seconds: float = 0.0  # length of the music: to the end of its last bar
    bars: int = 0


def perform(model: FolkRNN, params: Parameters, limits: Limits, seed: int | None = None, model_path: str | None = None) -> Take:
    """Compose and place notes until ``limits`` (time starts at 0 s)."""
    composer = Composer(model, params, seed=seed, model_path=model_path)
    phrasing = Phrasing(params, start_time=0.0)
    notes: list[ScheduledNote] = []
    end_beat = 0.0
    done = False
    while not done and composer.tokens_sampled < MAX_TOKENS:
        for note in composer.next_notes():
            if limits.beyond(note, phrasing, 0.0):
                done = True
                break
            notes.append(phrasing.place(note))
            bar_start = note.beat - note.bar_offset
            end_beat = max(end_beat, bar_start + vocab.METER_EIGHTHS[note.meter] / 2, note.beat + note.duration)
    composer.cut()
    take = Take(notes, list(composer.finished), phrasing.tempo.time_at(end_beat), phrasing.bars)
    return take


def render_take(take: Take, samplerate: int = 48000, timbre: str = "harp", synth: str = "auto",
                 soundfont: str | None = None) -> tuple[np.ndarray, str]:
    """The take as float32 audio (frames, 2), at least as long as its bars, tail included, rendered
    by the sound ``play`` would use (``instrument.outputs.sound``) and normalised to its peak of
    ``RENDER_PEAK_DBFS``; and what rendered it."""
    from instrument.music.timbres import find_timbre
    from instrument.outputs.sound import RENDER_PEAK_DBFS, normalise_peak, render_notes

    audio, by = render_notes(take.notes, find_timbre(timbre), synth, samplerate, start=0.0, soundfont=soundfont)
    frames = int(round(take.seconds * samplerate))
    if len(audio) < frames:
        audio = np.concatenate([audio, np.zeros((frames - len(audio), audio.shape[1]), dtype=audio.dtype)])
    audio, gain_db = normalise_peak(audio)
    return audio, f"{by}; peak normalised to {RENDER_PEAK_DBFS:g} dBFS ({gain_db:+.1f} dB)"
