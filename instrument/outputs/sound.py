"""The built-in sound: FluidSynth where it is installed, else the numpy synth; one choice for live and offline.

``--synth auto`` (the default) takes FluidSynth when libfluidsynth and a General MIDI SoundFont
are here, and says in one line what to install when they are not; ``--synth fluidsynth`` insists
on it, ``--synth numpy`` takes the numpy synth. The timbre (``instrument.music.timbres``) picks
FluidSynth's GM program, or the numpy synth's timbre that plucks or sustains like it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from instrument.errors import UsageError
from instrument.music.timbres import GmTimbre
from instrument.music.phrasing import ScheduledNote
from instrument.outputs import Output, VoiceSound

SYNTHS = ("auto", "fluidsynth", "numpy")
# Offline renders are normalised to this peak: as loud as a file can be with a decibel of headroom
# for the peaks between samples that a resampler or a lossy encoder brings out. A peak, not a
# loudness (LUFS) target: no loudness library is a dependency, and a peak never clips, where
# loudness normalisation of a sparse take (a solo fiddle's RMS sits 15-20 dB under its peaks)
# would need a limiter. The live sound is set by the parameter ``gain`` instead.
RENDER_PEAK_DBFS = -1.0


def numpy_timbre(timbre: GmTimbre) -> str:
    """The numpy synth's timbre for a folk timbre: ``bow`` for what sustains, ``pluck`` for the rest."""
    return "bow" if timbre.sustains else "pluck"


@dataclass
class Sound:
    output: Output | None
    message: str  # one line for the performer: what plays, or why nothing does


def open_sound(synth: str, timbre: GmTimbre, soundfont: str | None = None, device: str | None = None,
               required: bool = False, gain_db: float = 0.0, voices: Sequence[VoiceSound] = ()) -> Sound:
    """Open the built-in sound at ``gain_db`` (the live parameter ``gain``; ``set_gain`` moves it).
    ``required`` (``--audio``): no sound is an error (UsageError). A ``--soundfont`` that is not
    there is always an error. ``voices``: an ensemble's, each its own FluidSynth instrument (the
    numpy synth plays them all in one timbre)."""
    from instrument.outputs import fluid

    fallback = ""
    if synth in ("auto", "fluidsynth"):
        try:
            out = fluid.FluidSynth(timbre, soundfont=soundfont, voices=voices)
            out.set_gain(gain_db)
            return Sound(out, out.status())
        except fluid.FluidSynthUnavailable as error:
            if synth == "fluidsynth":
                raise UsageError(f"--synth fluidsynth: {error}") from None
            fallback = f" ({error})"
    from instrument.outputs.synth import AudioUnavailable, Synth, audio_available

    ok, why = audio_available(device)
    if ok:
        try:
            out = Synth(device=device, timbre=numpy_timbre(timbre))
            out.set_gain(gain_db)
            every = f" (every voice: the numpy synth has one timbre)" if len(voices) > 1 else ""
            return Sound(out, f"audio: numpy synth, {why}, {numpy_timbre(timbre)} timbre for {timbre.name}{every}{fallback}")
        except AudioUnavailable as error:
            why = str(error)
    if required:
        raise UsageError(f"--audio: {why}; use --no-audio, or --audio-device to pick another device")
    return Sound(None, f"built-in synth off: {why}")


def render_notes(notes: Sequence[ScheduledNote], timbre: GmTimbre, synth: str = "auto", samplerate: int = 48000,
           start: float | None = None, soundfont: str | None = None, voices: Sequence[VoiceSound] = ()) -> tuple[np.ndarray, str]:
    """Render offline with the sound ``play`` would use: (float32 (frames, 2), what rendered it).
    ``voices``: an ensemble's instruments (FluidSynth; the numpy synth plays them in one timbre)."""
    from instrument.outputs import fluid

    fallback = ""
    if synth in ("auto", "fluidsynth"):
        try:
            audio = fluid.render_with_fluidsynth(notes, timbre, samplerate, start=start, soundfont=soundfont, voices=voices)
            names = ", ".join(v.timbre.name for v in voices) if len(voices) > 1 else timbre.name
            return audio, f"FluidSynth, {names} from {fluid.find_soundfont(soundfont).resolve().name}"
        except fluid.FluidSynthUnavailable as error:
            if synth == "fluidsynth":
                raise UsageError(f"--synth fluidsynth: {error}") from None
            fallback = f" ({error})"
    from instrument.outputs.synth import render_with_numpy

    audio = render_with_numpy(notes, samplerate=samplerate, timbre=numpy_timbre(timbre), start=start)
    every = " (every voice: the numpy synth has one timbre)" if len(voices) > 1 else ""
    return audio, f"numpy synth, {numpy_timbre(timbre)} timbre for {timbre.name}{every}{fallback}"


def normalise_peak(audio: np.ndarray, peak_dbfs: float = RENDER_PEAK_DBFS) -> tuple[np.ndarray, float]:
    """``audio`` scaled so that its largest sample is ``peak_dbfs`` (silence stays silent), and
    the gain applied in dB."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak <= 0.0:
        return audio, 0.0
    gain = 10.0 ** (peak_dbfs / 20.0) / peak
    return (audio * np.float32(gain)).astype(np.float32, copy=False), 20.0 * math.log10(gain)
