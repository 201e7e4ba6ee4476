"""The built-in synth: an ``Output`` that plays notes through an audio device, and offline renders.

Live and offline sound come from the same code: the audio callback and ``render`` both call
``VoiceBank.render`` (``instrument.outputs.voices``) block after block. This module only adds
what differs: finding and opening a PortAudio device, mapping the scheduler's clock to stream
samples, and writing WAV files.

``sounddevice`` is imported only when a device is wanted: where PortAudio is missing its import
raises OSError, which is reported as "no audio" with the reason, and offline rendering still works.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import time
import wave
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from instrument.music.phrasing import ScheduledNote
from instrument.outputs.voices import PANIC_S, VoiceBank, timbre as get_timbre
from instrument.live.scheduler import clock
from instrument.music.tunes import Tune

log = logging.getLogger(__name__)


class AudioUnavailable(RuntimeError):
    """No usable audio output: the message says why in one line (no PortAudio, no device...)."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (OSError, ImportError) as e:  # OSError: the PortAudio library itself is missing
        raise AudioUnavailable(f"PortAudio is not available ({e}); on Debian: apt-get install libportaudio2") from None
    return sounddevice


@dataclass(frozen=True)
class AudioDevice:
    """An output device PortAudio can open."""

    index: int
    name: str
    hostapi: str
    samplerate: float  # the device's default rate
    channels: int  # its most output channels

    def __str__(self) -> str:
        return f"{self.hostapi} ({self.name})"


def find_output_device(device: int | str | None = None) -> AudioDevice:
    """The output device to use: ``device`` (index or name substring), else PortAudio's default
    output, else the first output device (a JACK one first). Raises ``AudioUnavailable``."""
    sd = _sounddevice()
    try:
        if device is not None:
            info = sd.query_devices(device, "output")
        else:
            try:
                info = sd.query_devices(kind="output")
            except (ValueError, sd.PortAudioError):  # no default output (index -1)
                outputs = [d for d in sd.query_devices() if d["max_output_channels"] > 0]
                if not outputs:
                    apis = ", ".join(a["name"] for a in sd.query_hostapis()) or "none"
                    raise AudioUnavailable(f"no audio output device (PortAudio host APIs: {apis})") from None
                jack = [d for d in outputs if "JACK" in sd.query_hostapis(d["hostapi"])["name"]]
                info = (jack or outputs)[0]
    except (ValueError, sd.PortAudioError) as e:
        raise AudioUnavailable(f"no audio output device {device!r}: {e}") from None
    return AudioDevice(
        index=int(info["index"]), name=str(info["name"]),
        hostapi=str(sd.query_hostapis(info["hostapi"])["name"]),
        samplerate=float(info["default_samplerate"]), channels=int(info["max_output_channels"]),
    )


def audio_available(device: int | str | None = None, samplerate: float | None = None) -> tuple[bool, str]:
    """Whether the synth can play here: ``(True, "JACK Audio Connection Kit (system), 48000 Hz")``
    or ``(False, reason)``. Never raises."""
    dev: AudioDevice | str = "audio device"
    try:
        dev = find_output_device(device)
        sd = _sounddevice()
        rate = samplerate or dev.samplerate
        sd.check_output_settings(device=dev.index, channels=min(2, dev.channels), samplerate=rate, dtype="float32")
    except AudioUnavailable as e:
        return False, str(e)
    except Exception as e:  # PortAudioError, ValueError: the settings do not fit the device
        return False, f"{dev}: {e}"
    return True, f"{dev}, {rate:g} Hz"


class SampleClock:
    """Maps times on the scheduler's ``clock()`` to stream sample positions, and back.

    Each callback knows the stream sample its first frame is (``position``: frames rendered
    since the stream started) and, from PortAudio's time info, how long that frame takes to
    reach the DAC (``lead`` = outputBufferDacTime - currentTime, seconds). So sample 0 sounds at
    about ``origin = now + lead - position / samplerate``, ``now`` being ``clock()`` at the
    callback's entry, and sample ``s`` at ``origin + s / samplerate``.

    Measured block by block, that origin is late by the callback's wake-up delay, which is
    never negative and passes with the next block; but when the stream loses time (an
    underrun: the device played on while we were late; a JACK dummy server on a loaded machine
    does this many times a second, running a third slow) the origin moves later for good. So
    the estimate is the lowest origin measured over the last ``window_s`` (and at least the
    last two blocks): a late wake-up is ignored, lost time is taken on within ``window_s``, and
    clock drift (some ppm) is followed as it goes.
    """

    def __init__(self, samplerate: float, window_s: float = 0.02):
        self.sr = float(samplerate)
        self.window = int(window_s * self.sr)  # in samples
        self._recent: deque[tuple[int, float]] = deque()  # (position, measured origin), origin rising
        self.origin: float | None = None

    def update(self, position: int, now: float, lead: float, frames: int) -> None:
        measured = now + lead - position / self.sr
        recent = self._recent
        while recent and recent[-1][1] >= measured:  # a monotonic deque: the minimum is recent[0]
            recent.pop()
        recent.append((position, measured))
        while recent[0][0] < position - max(self.window, 2 * frames):
            recent.popleft()
        self.origin = recent[0][1]

    def sample(self, t: float) -> int:
        """The stream sample that sounds at ``t`` (seconds on ``clock``)."""
        return int(round((t - self.origin) * self.sr))

    def time(self, sample: float) -> float:
        """When stream sample ``sample`` sounds, on ``clock``."""
        return self.origin + sample / self.sr


class _Panic(NamedTuple):
    at: float


class Synth:
    """The built-in polyphonic synth as an output (``pluck`` or ``bow``).

    Notes arrive ahead of time from any thread and go into a deque (append and popleft are
    atomic, so neither side ever waits); the audio callback drains it, maps each note's times
    to stream samples with ``SampleClock`` and starts and ends it at those exact samples.
    Notes must arrive at least ``latency_s`` (plus a block) ahead; a later one starts late.
    """

    name = "synth"

    def __init__(self, device: int | str | None = None, samplerate: float | None = None, blocksize: int = 256,
                 timbre: str = "pluck", gain: float = 1.0, polyphony: int = 16, channels: int = 2,
                 latency: str | float = "low"):
        """Open the output stream (it starts with ``start``). Raises ``AudioUnavailable``.

        ``device``: PortAudio index or name substring (None: see ``find_output_device``);
        ``samplerate``: None for the device's own; ``blocksize``: frames per callback (0: the
        host's); ``latency``: PortAudio's suggested output latency ("low", "high" or seconds).
        """
        sd = _sounddevice()
        self.device = find_output_device(device)
        self.samplerate = float(samplerate or self.device.samplerate)
        self.channels = min(channels, self.device.channels, 2)
        self.timbre = get_timbre(timbre)
        self._bank = VoiceBank(self.samplerate, self.timbre, self.channels, polyphony, gain)
        self._clock = SampleClock(self.samplerate)
        self._inbox: deque[ScheduledNote | _Panic] = deque()
        self._waiting: list[tuple[float, int, ScheduledNote]] = []  # heap by onset, audio thread only
        self._seq = itertools.count()
        self.callback_times: deque[tuple[float, float]] = deque(maxlen=100_000)  # (wall, cpu) s
        self.underruns = 0
        self._errors = 0
        self._closed = False
        try:
            self._stream = sd.OutputStream(
                device=self.device.index, samplerate=self.samplerate, blocksize=blocksize,
                channels=self.channels, dtype="float32", latency=latency, callback=self._callback,
            )
        except Exception as e:  # PortAudioError, ValueError: the device refuses these settings
            raise AudioUnavailable(f"cannot open {self.device} at {self.samplerate:g} Hz: {e}") from None
        self.latency_s = float(self._stream.latency)
        self.blocksize = blocksize

    # -- Output ---------------------------------------------------------------------------------

    def start(self, at: float) -> None:
        if not self._closed and not self._stream.active:
            self._stream.start()

    def schedule(self, note: ScheduledNote) -> None:
        self._inbox.append(note)

    def tune(self, number: int, tune: Tune) -> None:
        """Nothing to do: the synth only sounds notes."""

    def panic(self, at: float) -> None:
        self._inbox.append(_Panic(at))

    def close(self, at: float) -> None:
        """Panic, let the 10 ms fade play out, then stop and close the stream."""
        if self._closed:
            return
        self.panic(at)
        if self._stream.active:
            block = (self.blocksize or 256) / self.samplerate
            done = max(at, clock()) + PANIC_S + self.latency_s + 2 * block + 0.005
            while clock() < done:
                time.sleep(min(0.005, max(0.0, done - clock())))
            self._stream.stop()
        self._stream.close()
        self._closed = True

    def status(self) -> str:
        if self._closed:
            return "audio: closed"
        line = f"audio: {self.device}, {self.samplerate:g} Hz, {self.timbre.name}"
        if self._bank.late:
            line += f", {self._bank.late} late notes"
        if self.underruns:
            line += f", {self.underruns} underruns"
        return line

    # -- the audio thread -----------------------------------------------------------------------

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now, cpu = clock(), time.thread_time()
        try:
            if status.output_underflow:
                self.underruns += 1
            lead = time_info.outputBufferDacTime - time_info.currentTime
            if not 0.0 <= lead < 1.0:  # some host APIs give no times: use the stream's latency
                lead = self.latency_s
            bank, mapping, inbox, waiting = self._bank, self._clock, self._inbox, self._waiting
            mapping.update(bank.position, now, lead, frames)
            while inbox:
                item = inbox.popleft()
                if isinstance(item, _Panic):
                    waiting.clear()
                    bank.panic(mapping.sample(item.at))
                else:
                    heapq.heappush(waiting, (item.on, next(self._seq), item))
            # Times become samples only when due, with the freshest mapping: a stream that
            # loses time would otherwise play notes queued long ago late.
            horizon = mapping.time(bank.position + frames)
            while waiting and waiting[0][0] < horizon:
                note = heapq.heappop(waiting)[2]
                bank.add(mapping.sample(note.on), mapping.sample(note.off), note.pitch, note.velocity)
            outdata[:] = bank.render(frames)
        except Exception:  # never let an error kill the stream: play silence, say it once
            outdata.fill(0.0)
            self._errors += 1
            if self._errors == 1:
                log.exception("synth callback failed")
        self.callback_times.append((clock() - now, time.thread_time() - cpu))


def render(notes: Sequence[ScheduledNote], samplerate: int = 48000, timbre: str = "pluck", start: float | None = None,
           channels: int = 2, polyphony: int = 16, gain: float = 1.0, blocksize: int = 256,
           panic_at: float | None = None) -> np.ndarray:
    """Render ``notes`` offline with the live synth's voices: float32 (frames, channels).

    Times are seconds on any clock; sample 0 is ``start`` (default: the first onset). The length
    is ``ceil((last note-off - start + the timbre's release) * samplerate)``: everything has died
    away by then. ``panic_at`` panics at that time, as ``Synth.panic`` does live.
    """
    if not notes:
        return np.zeros((0, channels), dtype=np.float32)
    t = get_timbre(timbre)
    if start is None:
        start = min(n.on for n in notes)
    frames = max(0, math.ceil((max(n.off for n in notes) - start + t.release_s) * samplerate - 1e-6))  # float dust
    bank = VoiceBank(samplerate, t, channels, polyphony, gain)
    for n in sorted(notes, key=lambda n: n.on):
        bank.add(round((n.on - start) * samplerate), round((n.off - start) * samplerate), n.pitch, n.velocity)
    out = np.empty((frames, channels), dtype=np.float32)
    panic_sample = None if panic_at is None else round((panic_at - start) * samplerate)
    pos = 0
    while pos < frames:
        size = min(blocksize, frames - pos)
        if panic_sample is not None and panic_sample < pos + size:
            bank.panic(panic_sample)
            panic_sample = None
        out[pos:pos + size] = bank.render(size)
        pos += size
    return out


def write_wav(path: str | Path, audio: np.ndarray, samplerate: int) -> None:
    """Write float audio (frames,) or (frames, channels) in [-1, 1] as 16-bit PCM WAV."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(samplerate))
        w.writeframes(pcm.tobytes())
