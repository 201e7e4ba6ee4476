"""The built-in synth: an ``Output`` that plays notes through an audio device, and offline renders.

Live and offline sound come from the same code: the render thread and ``render_with_numpy`` both call
``ToneBank.block`` (``instrument.outputs.tones``) block after block. This module only adds
what differs: finding and opening a PortAudio device, a ring buffer that a C callback plays from
(``audio_ring.c``: the audio thread never runs Python), mapping the scheduler's clock to stream
samples, and writing WAV files.

``sounddevice`` is imported only when a device is wanted: where PortAudio is missing its import
raises OSError, which is reported as "no audio" with the reason, and offline rendering still works.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import math
import subprocess
import threading
import time
import wave
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from instrument.midi.ports import realtime_jack_threads
from instrument.music.phrasing import ScheduledNote
from instrument.outputs.stream_clock import StreamClock
from instrument.outputs.tones import PANIC_S, ToneBank, timbre as get_timbre
from instrument.timing import REALTIME_PRIORITY, clock, realtime
from instrument.music.tunes import Tune

log = logging.getLogger(__name__)


class AudioUnavailable(RuntimeError):
    """No usable audio output: the message says why in one line (no PortAudio, no device...)."""


def _sounddevice() -> Any:
    try:  # importing it starts PortAudio, whose JACK client starts its audio thread: real-time, named
        with realtime_jack_threads(name="synth-jack"):
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


class _Panic(NamedTuple):
    at: float


class _Release(NamedTuple):
    voice: int
    at: float
    pitch: int | None = None


class _Record(ctypes.Structure):
    """What the C callback leaves for each block: its first frame, the clock then, and its lead."""
    _fields_ = [("position", ctypes.c_int64), ("now", ctypes.c_double), ("lead", ctypes.c_double), ("frames", ctypes.c_int64)]


LOST_TIME_S = 0.2  # a note late this soon after the stream lost time was late by that loss
RING_SOURCE = Path(__file__).with_name("audio_ring.c")
RING_FLAGS = ["-O2", "-std=gnu11", "-fPIC", "-shared", "-pthread"]
RING_LIBS = ["-l:libportaudio.so.2"]  # the library sounddevice loads; no PortAudio headers needed


def _ring_library() -> ctypes.CDLL:
    """The C audio callback (``audio_ring.c``), compiled at first use. Raises AudioUnavailable."""
    from instrument import native

    try:
        lib = ctypes.CDLL(str(native.built(RING_SOURCE, RING_FLAGS, RING_LIBS)))
    except native.CompilerMissing as e:
        raise AudioUnavailable(f"the numpy synth's C audio callback cannot be built: {e}, "
                               "or play through FluidSynth") from None
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        raise AudioUnavailable(f"the numpy synth's C audio callback cannot be built ({str(e)[:120]}); "
                               "install gcc, or play through FluidSynth") from None
    P, I64 = ctypes.c_void_p, ctypes.c_int64
    for name, restype, argtypes in (
        ("ar_open", P, [ctypes.c_int, ctypes.c_double, ctypes.c_int, ctypes.c_ulong, ctypes.c_double, I64,
                        ctypes.c_char_p, ctypes.c_int]),
        ("ar_latency", ctypes.c_double, [P]), ("ar_start", ctypes.c_int, [P]), ("ar_buffer", P, [P]),
        ("ar_read", I64, [P]), ("ar_written", I64, [P]), ("ar_commit", None, [P, I64]), ("ar_records", I64, [P]),
        ("ar_short_blocks", I64, [P]), ("ar_underflows", I64, [P]), ("ar_callbacks", I64, [P]),
        ("ar_record", ctypes.c_int, [P, I64, ctypes.POINTER(_Record)]), ("ar_close", None, [P]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class Synth:
    """The built-in polyphonic numpy synth as an output (``pluck`` or ``bow``): every voice of an
    ensemble in its one timbre (the fallback sound; FluidSynth gives each voice its instrument).

    PortAudio's audio thread runs a callback in C (``audio_ring.c``) that only copies frames from
    a ring buffer: it never needs Python's GIL, which the live view, the model and the timing
    thread hold much of the time (docs/audio.md measures it). A render thread of ours fills the
    ring ``ahead_s`` ahead of the callback with ``ToneBank.block`` (the function ``render_with_numpy``
    uses offline), so a Python thread may be held up for almost that long before a block is
    late. Notes arrive from any thread into a deque (append and popleft are atomic, so neither
    side waits); the render thread maps their times to stream samples with ``StreamClock``, fed
    by the callback's records of when each block sounds, and starts and ends them at those
    exact samples. Notes must arrive ``lead_s`` before their time (the engine hands them over so).
    """

    name = "synth"

    def __init__(self, device: int | str | None = None, samplerate: float | None = None, blocksize: int = 256,
                 timbre: str = "pluck", gain: float = 1.0, polyphony: int = 16, channels: int = 2,
                 latency: str | float = "low", ahead_s: float = 0.030):
        """Open the output stream (it starts with ``start``). Raises ``AudioUnavailable``.

        ``device``: PortAudio index or name substring (None: see ``find_output_device``);
        ``samplerate``: None for the device's own; ``blocksize``: frames per callback;
        ``latency``: PortAudio's suggested output latency ("low", "high" or seconds);
        ``ahead_s``: how far ahead of the callback the ring is kept full (at least two blocks): the
        longest the render thread may wait for the GIL without a dropout. 10 ms ran short every few
        seconds under a storm of controls on a busy 2-core machine, 30 ms about once a minute or less
        (docs/audio.md); the engine hands notes over that much earlier (``lead_s``), so the cost
        is that a control or a panic is heard some 20 ms later than with 10 ms.
        """
        self.device = find_output_device(device)
        info = _sounddevice().query_devices(self.device.index)
        self.samplerate = float(samplerate or self.device.samplerate)
        self.channels = min(channels, self.device.channels, 2)
        self.timbre = get_timbre(timbre)
        self.blocksize = blocksize = blocksize or 256
        self._bank = ToneBank(self.samplerate, self.timbre, self.channels, polyphony, gain)
        self._clock = StreamClock(self.samplerate, window_s=0.02)
        self._inbox: deque[ScheduledNote | _Panic | _Release] = deque()
        self._waiting: list[tuple[float, int, ScheduledNote]] = []  # heap by onset, render thread only
        self._seq = itertools.count()
        self.callback_times: deque[tuple[float, float]] = deque(maxlen=100_000)  # (wall, cpu) s per block rendered
        self._errors = 0
        self._late_after_loss = 0  # late notes that came just after the stream lost time
        self._closed = False
        self._ahead = max(2, math.ceil(ahead_s * self.samplerate / blocksize)) * blocksize
        self._lib = lib = _ring_library()
        suggested = {"low": info["default_low_output_latency"], "high": info["default_high_output_latency"]}.get(latency, latency)
        error = ctypes.create_string_buffer(256)
        self._ring = lib.ar_open(self.device.index, self.samplerate, self.channels, blocksize, float(suggested),
                                 4 * self._ahead, error, len(error))
        if not self._ring:
            raise AudioUnavailable(f"cannot open {self.device} at {self.samplerate:g} Hz: {error.value.decode()}")
        self.latency_s = float(lib.ar_latency(self._ring))
        # a note is placed when the block holding its onset is rendered, which is up to the ring's
        # fill (ahead, and the block being written) plus a block and the device latency before it sounds
        self.lead_s = (self._ahead + 2 * blocksize) / self.samplerate + self.latency_s
        buf = ctypes.cast(lib.ar_buffer(self._ring), ctypes.POINTER(ctypes.c_float))
        self._buffer = np.ctypeslib.as_array(buf, shape=(4 * self._ahead, self.channels))
        self._running = False
        self._thread = threading.Thread(target=self._render_loop, name="synth-render", daemon=True)

    @property
    def underruns(self) -> int:
        """Blocks the callback found the ring short of, plus those PortAudio reports as underflows."""
        return 0 if self._closed else int(self._lib.ar_short_blocks(self._ring) + self._lib.ar_underflows(self._ring))

    def _underrun_text(self) -> str:
        """'N underruns', and where some were the server's (an xrun PortAudio passed on) rather than
        the ring running short (the render thread late), how many of each."""
        short = int(self._lib.ar_short_blocks(self._ring))
        total = self.underruns
        return f"{total} underruns" + (f" ({short} the ring short, {total - short} xruns)" if short != total else "")

    # -- Output ---------------------------------------------------------------------------------

    def start(self, at: float) -> None:
        if not self._closed and not self._running:
            self._running = True
            self._write(self._bank.block(self._ahead))  # silence until the first callback says when it sounds
            self._thread.start()
            if self._lib.ar_start(self._ring):
                log.warning("the audio stream did not start")

    def schedule(self, note: ScheduledNote) -> None:
        self._inbox.append(note)

    def tune(self, number: int, tune: Tune) -> None:
        """Nothing to do: the synth only sounds notes."""

    def panic(self, at: float) -> None:
        self._inbox.append(_Panic(at))

    def release(self, voice: int, at: float, pitch: int | None = None) -> None:
        self._inbox.append(_Release(voice, at, pitch))

    def close(self, at: float) -> None:
        """Panic, let the 10 ms fade play out, then stop and close the stream."""
        if self._closed:
            return
        self.panic(at)
        if self._running:
            block = self.blocksize / self.samplerate
            done = max(at, clock()) + PANIC_S + self._ahead / self.samplerate + self.latency_s + 2 * block + 0.005
            while clock() < done:
                time.sleep(min(0.005, max(0.0, done - clock())))
            self._running = False
            self._thread.join(1.0)
        self._underruns_at_close = self._underrun_text()
        self._lib.ar_close(self._ring)
        self._closed = True

    def set_gain(self, db: float) -> None:
        """The live parameter ``gain``: the synth's master level, ``db`` above or below its own
        (glides over the next block; the limiter still keeps chords from clipping)."""
        self._bank.level = 10.0 ** (db / 20.0)

    def _late_text(self) -> str:
        """'N late notes', and how many of them came just after the stream lost time (a server's
        cycle run late by the machine: the notes were handed over in time for our clock)."""
        after = f" ({self._late_after_loss} after the stream lost time)" if self._late_after_loss else ""
        return f"{self._bank.late} late notes{after}"

    def status(self) -> str:
        if self._closed:
            return f"audio: closed ({self._underruns_at_close}, {self._late_text()})"
        line = f"audio: {self.device}, {self.samplerate:g} Hz, {self.timbre.name}"
        if self._bank.late:
            line += f", {self._late_text()}"
        if self.underruns:
            line += f", {self._underrun_text()}"
        return line

    # -- the render thread ----------------------------------------------------------------------

    def _write(self, block: np.ndarray) -> None:
        """Copy a rendered block into the ring after what is there, and publish it to the callback."""
        size = len(self._buffer)
        at = self._lib.ar_written(self._ring) % size
        first = min(len(block), size - at)
        self._buffer[at: at + first] = block[:first]
        self._buffer[: len(block) - first] = block[first:]
        self._lib.ar_commit(self._ring, len(block))

    def _render_loop(self) -> None:
        realtime(REALTIME_PRIORITY - 1)  # like the timing thread: a core at once when a block is due, where allowed
        lib, ring, record, seen = self._lib, self._ring, _Record(), 0
        frames, half_block = self.blocksize, self.blocksize / self.samplerate / 2
        while self._running:
            count = lib.ar_records(ring)
            seen = max(seen, count - 512)
            while seen < count:
                if lib.ar_record(ring, seen, ctypes.byref(record)):
                    lead = record.lead if 0.0 <= record.lead < 1.0 else self.latency_s
                    self._clock.read(record.now, record.position, lead, span_s=2 * record.frames / self.samplerate)
                seen += 1
            if self._clock.origin is None or lib.ar_written(ring) - lib.ar_read(ring) >= self._ahead:
                time.sleep(half_block)  # without the GIL
                continue
            now, cpu = clock(), time.thread_time()
            try:
                self._write(self._next_block(frames))
            except Exception:  # never let an error stop the sound: play silence, say it once
                self._write(np.zeros((frames, self.channels), dtype=np.float32))
                self._errors += 1
                if self._errors == 1:
                    log.exception("synth render failed")
            self.callback_times.append((clock() - now, time.thread_time() - cpu))

    def _next_block(self, frames: int) -> np.ndarray:
        bank, mapping, inbox, waiting = self._bank, self._clock, self._inbox, self._waiting
        while inbox:
            item = inbox.popleft()
            if isinstance(item, _Panic):
                waiting.clear()
                bank.panic(mapping.position(item.at))
            elif isinstance(item, _Release):
                if item.pitch is None:
                    waiting[:] = [w for w in waiting if w[2].voice != item.voice or w[0] < item.at]
                    heapq.heapify(waiting)
                bank.release(item.voice, mapping.position(item.at), item.pitch)
            else:
                heapq.heappush(waiting, (item.on, next(self._seq), item))
        # Times become samples only when due, with the freshest mapping: a stream that loses time
        # would otherwise play notes queued long ago late.
        horizon = mapping.time(bank.position + frames)
        while waiting and waiting[0][0] < horizon:
            note = heapq.heappop(waiting)[2]
            late = bank.late
            bank.add(mapping.position(note.on), mapping.position(note.off), note.pitch, note.velocity, note.voice)
            if bank.late > late and clock() - mapping.lost_at < LOST_TIME_S:
                self._late_after_loss += 1  # its time had passed on the stream, not on our clock
        return bank.block(frames)


def render_with_numpy(notes: Sequence[ScheduledNote], samplerate: int = 48000, timbre: str = "pluck", start: float | None = None,
           channels: int = 2, polyphony: int = 16, gain: float = 1.0, blocksize: int = 256,
           panic_at: float | None = None) -> np.ndarray:
    """Render ``notes`` offline with the live synth's tones: float32 (frames, channels).

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
    bank = ToneBank(samplerate, t, channels, polyphony, gain)
    for n in sorted(notes, key=lambda n: n.on):
        bank.add(round((n.on - start) * samplerate), round((n.off - start) * samplerate), n.pitch, n.velocity, n.voice)
    out = np.empty((frames, channels), dtype=np.float32)
    panic_sample = None if panic_at is None else round((panic_at - start) * samplerate)
    pos = 0
    while pos < frames:
        size = min(blocksize, frames - pos)
        if panic_sample is not None and panic_sample < pos + size:
            bank.panic(panic_sample)
            panic_sample = None
        out[pos:pos + size] = bank.block(size)
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
