"""The built-in synth: offline renders (pitch, loudness, clicks, stealing, panic, limiter) and the
live callback playing through a real JACK server, recorded by a second JACK client."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import wave

import numpy as np
import pytest

from instrument.music.phrasing import ScheduledNote
from instrument.outputs import Output
from instrument.outputs.stream_clock import StreamClock
from instrument.outputs.synth import AudioUnavailable, Synth, audio_available, render_with_numpy, write_wav
from instrument.outputs.tones import NEVER, PANIC_S, STEAL_S, TIMBRES, ToneBank
from instrument.timing import clock
from bench.harness.wait import wait_for
from tests.helpers import ROOT

SR = 48000
MS = SR // 1000


def note(on: float, off: float, pitch: int = 57, velocity: int = 100) -> ScheduledNote:
    return ScheduledNote(on=on, off=off, pitch=pitch, velocity=velocity, channel=1, tune=1)


def hz(pitch: int) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def max_step(x: np.ndarray, a: int, b: int) -> float:
    """The biggest sample-to-sample jump in x[a:b] (a click is a jump)."""
    return float(np.abs(np.diff(x[max(a, 0):b])).max())


def assert_smooth_at(x: np.ndarray, at: int, before: int = 10 * MS) -> None:
    """No click at sample ``at``: the biggest jump within 0.5 ms of it is no bigger than the
    sound's own jumps over the ``before`` samples just before (the note or notes sounding), and
    tiny where it starts from silence. A note cut or started at full level jumps by its
    amplitude, many times its sample-to-sample change at these pitches."""
    near = max_step(x, at - MS // 2, at + MS // 2)
    context = max_step(x, at - before, at - MS // 2) if at - before > 0 else 0.0
    assert near <= max(1.2 * context, 2e-3), (at, near, context)


# -- offline render -----------------------------------------------------------------------------

@pytest.mark.parametrize("timbre", list(TIMBRES))
def test_render_length_and_silence_around_notes(timbre):
    notes = [note(10.1, 10.3, 57), note(10.8, 11.0, 64)]  # any clock: times are relative
    audio = render_with_numpy(notes, SR, timbre, start=10.0)
    release = TIMBRES[timbre].release_s
    assert audio.dtype == np.float32 and audio.shape == (round((1.0 + release) * SR), 2)
    x = np.abs(audio).max(axis=1)
    assert x[: int(0.1 * SR)].max() == 0.0  # before the first onset: digital silence
    assert x[int(0.1 * SR) + 5 * MS: int(0.3 * SR)].max() > 0.02  # the note sounds
    gap = slice(int((0.3 + release) * SR) + MS, int(0.8 * SR))  # released, before the next
    assert x[gap].max() == 0.0
    assert x[-MS:].max() < 1e-4  # everything has died away at the end
    assert render_with_numpy([], SR, timbre).shape == (0, 2)
    assert render_with_numpy(notes, SR, timbre).shape[0] == round((0.9 + release) * SR)  # from the first onset
    mono = render_with_numpy(notes, SR, timbre, start=10.0, channels=1)
    assert mono.shape == (len(audio), 1) and np.abs(mono).max() > 0.02


@pytest.mark.parametrize("timbre", list(TIMBRES))
@pytest.mark.parametrize("pitch", [45, 57, 64, 72, 81])
def test_pitch_is_the_strongest_low_peak(timbre, pitch):
    audio = render_with_numpy([note(0.0, 0.6, pitch, 90)], SR, timbre)[:, 0]
    seg = audio[int(0.1 * SR): int(0.5 * SR)]
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 8 * len(seg)))
    freqs = np.fft.rfftfreq(8 * len(seg), 1 / SR)
    low = (freqs > 30) & (freqs < 2500)
    peak = freqs[low][np.argmax(spectrum[low])]
    assert abs(peak / hz(pitch) - 1) < 0.01, (peak, hz(pitch))  # well inside a quarter tone


@pytest.mark.parametrize("timbre", list(TIMBRES))
def test_velocity_shapes_loudness_and_brightness(timbre):
    rms, centroid = [], []
    for velocity in (20, 50, 80, 110, 127):
        x = render_with_numpy([note(0.0, 0.4, 57, velocity)], SR, timbre)[int(0.1 * SR): int(0.35 * SR), 0]
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        freqs = np.fft.rfftfreq(len(x), 1 / SR)
        rms.append(float(np.sqrt(np.mean(x**2))))
        centroid.append(float((spectrum * freqs).sum() / spectrum.sum()))
    assert all(a < b for a, b in zip(rms, rms[1:])), rms
    assert rms[-1] > 4 * rms[0]  # a real dynamic range, not a nudge
    assert all(a < b for a, b in zip(centroid, centroid[1:])), centroid


@pytest.mark.parametrize("timbre", list(TIMBRES))
def test_no_clicks_at_note_boundaries(timbre):
    t = TIMBRES[timbre]
    # onsets off the block grid, a very short note, overlapping notes, notes starting as others end
    notes = [note(0.0103, 0.4007, 43, 127), note(0.3001, 0.3051, 50, 127), note(0.5, 0.9, 45, 120),
             note(0.7, 1.1, 52, 127), note(0.9, 1.3, 40, 110), note(1.3, 1.7, 47, 127)]
    audio = render_with_numpy(notes, SR, timbre, start=0.0)
    for ch in range(2):
        x = audio[:, ch]
        for n in notes:
            for edge in (n.on, n.off, n.off + t.release_s):
                assert_smooth_at(x, round(edge * SR))


def test_tone_stealing_fades_the_oldest_and_stays_click_free():
    bank = ToneBank(SR, "bow", polyphony=4)
    pitches = [40, 43, 45, 47, 50, 52, 55, 57]
    for i, p in enumerate(pitches):  # eight held notes, 30 ms apart, on a synth of polyphony 4
        on = int((0.2 + 0.03 * i) * SR) + 17
        bank.add(on, on + SR, p, 127)
    blocks = []
    for _ in range(int(0.5 * SR) // 256):
        blocks.append(bank.block(256))
        held = bank.active & (bank.release_at > bank.position) & (bank.fade_at == NEVER)
        assert held.sum() <= 4
    x = np.concatenate(blocks)[:, 0]
    assert bank.sounding == 4  # the four stolen tones faded out and were freed
    f0 = bank.omega[bank.active, 0] * SR / (2 * np.pi)
    survivors = sorted(int(p) for p in np.round(69 + 12 * np.log2(f0 / 440)))
    assert survivors == pitches[4:]  # the oldest were stolen
    for i in range(4, 8):  # each steal: a fade, not a cut
        steal = int((0.2 + 0.03 * i) * SR) + 17
        assert_smooth_at(x, steal)
        assert_smooth_at(x, steal + round(STEAL_S * SR))


def test_panic_fades_fast_without_a_click_and_drops_what_has_not_started():
    notes = [note(0.0, 2.0, 45, 127), note(0.05, 2.0, 52, 127), note(0.6, 1.0, 57, 127)]
    for timbre in TIMBRES:
        audio = render_with_numpy(notes, SR, timbre, panic_at=0.4)
        x = audio[:, 0]
        at = int(0.4 * SR)
        assert np.abs(x[at - 20 * MS: at]).max() > 0.05  # sounding until the panic
        assert_smooth_at(x, at)
        end = at + round(PANIC_S * SR)
        assert np.abs(x[end + 256:]).max() == 0.0  # silent once the 10 ms fade is over (and
        assert np.abs(x[at: end]).max() > 0.0  # the next block): the note at 0.6 never starts


def test_limiter_keeps_a_full_chord_below_full_scale():
    chord = [note(0.0, 1.0, p, 127) for p in (36, 40, 43, 48, 52, 55, 60, 64, 67, 72, 76, 79, 84, 88, 91, 96)]
    for timbre in TIMBRES:
        audio = render_with_numpy(chord, SR, timbre)
        assert np.abs(audio).max() <= 0.98
        assert np.abs(audio).max() > 0.5  # loud, not squashed to nothing
        loud = render_with_numpy(chord, SR, timbre, gain=4.0)
        assert np.abs(loud).max() <= 0.98
    single = ToneBank(SR, "pluck")  # one note never reaches the limiter
    single.add(0, SR // 2, 57, 127)
    for _ in range(SR // 256):
        single.block(256)
        assert single.limiter.gain == 1.0


def test_the_master_level_scales_the_sound_and_glides_to_a_new_level_over_one_block():
    """The live ``gain`` on the numpy synth: -6 dB halves the sound, and a change glides over the
    next block instead of stepping (no click), sounding notes included."""
    def bank(level):
        b = ToneBank(SR, "bow", limiter=False, level=level)
        b.add(0, SR, 57, 100)
        return b

    plain, half = bank(1.0), bank(10 ** (-6 / 20))
    a, b = plain.block(4096), half.block(4096)
    assert np.allclose(b, a * 10 ** (-6 / 20), atol=1e-6) and np.abs(a).max() > 0.05
    plain.level = 10 ** (-6 / 20)  # moved while the note sounds
    a, b = plain.block(256), half.block(256)
    ramp = a[:, 0] / b[:, 0]
    assert ramp[0] == pytest.approx(10 ** (6 / 20) * (1 - 1 / 256) + 1 / 256, rel=1e-3)  # starts at the old level
    assert ramp[-1] == pytest.approx(1.0, rel=1e-4) and np.all(np.diff(ramp) <= 1e-6)  # and glides down to the new
    assert np.allclose(plain.block(256), half.block(256), atol=1e-6)


def test_write_wav_reads_back(tmp_path):
    audio = render_with_numpy([note(0.0, 0.2, 60)], SR, "pluck")
    path = tmp_path / "take.wav"
    write_wav(path, audio, SR)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, SR, len(audio))
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert np.abs(pcm / 32767.0 - audio).max() < 1e-4


# -- clock to samples ----------------------------------------------------------------------------

def test_stream_clock_ignores_late_callbacks_and_follows_lost_time():
    mapping, rng = StreamClock(SR, window_s=0.02), np.random.default_rng(0)
    origin, position = 100.0, 0
    for _ in range(200):  # callbacks late by 0..2 ms, never early
        mapping.read(origin + position / SR + rng.uniform(0, 0.002), position, 0.0, span_s=2 * 256 / SR)
        position += 256
    assert abs(mapping.origin - origin) < 0.0003
    assert mapping.position(origin + 1.0) == pytest.approx(SR, abs=15)
    origin += 0.030  # the stream lost 30 ms (an underrun): taken on within the window
    for _ in range(10):
        mapping.read(origin + position / SR + 0.0005, position, 0.0, span_s=2 * 256 / SR)
        position += 256
    assert abs(mapping.origin - origin) < 0.001
    assert mapping.time(mapping.position(origin + 5.0)) == pytest.approx(origin + 5.0, abs=1 / SR)


def test_stream_clock_with_a_long_window_follows_lost_time_at_once_when_every_recent_reading_says_so():
    """FluidSynth's ticks: a second's window keeps a late reading from moving a note, and the
    follow rule takes on lost time within ``follow_s``, not after the whole second."""
    ticks, rng = 1000, np.random.default_rng(1)
    mapping = StreamClock(ticks, window_s=1.0, follow_s=0.3, drop_s=0.004)
    origin, now = 50.0, 50.0
    for _ in range(100):  # a reading every 10 ms, late by 0..3 ms
        now += 0.01
        mapping.read(now, (now - origin - rng.uniform(0, 0.003)) * ticks)
    assert abs(mapping.origin - origin) < 0.0005
    origin += 0.020  # the stream lost 20 ms
    for _ in range(25):
        now += 0.01
        mapping.read(now, (now - origin) * ticks)
    assert abs(mapping.origin - (origin - 0.020)) < 0.0005  # 0.25 s of readings: not yet every recent one
    for _ in range(10):
        now += 0.01
        mapping.read(now, (now - origin) * ticks)
    assert abs(mapping.origin - origin) < 0.0005  # followed after follow_s, not after the 1 s window
    assert mapping.position(origin + 2.0) == 2 * ticks
    assert mapping.losses == 1 and now - 0.1 <= mapping.lost_at <= now  # said, so a late note can be put down to it


# -- devices -------------------------------------------------------------------------------------

def test_no_portaudio_is_reported_not_raised():
    """Where the PortAudio library is missing, importing sounddevice raises OSError."""
    code = (
        "import sys, importlib.abc\n"
        "class NoPortAudio(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'sounddevice': raise OSError('PortAudio library not found')\n"
        "sys.modules.pop('sounddevice', None); sys.meta_path.insert(0, NoPortAudio())\n"
        "from instrument.outputs.synth import audio_available, Synth, AudioUnavailable, render_with_numpy\n"
        "from instrument.music.phrasing import ScheduledNote\n"
        "ok, why = audio_available(); print(ok, why)\n"
        "try: Synth()\n"
        "except AudioUnavailable as e: print('unavailable:', e)\n"
        "print(render_with_numpy([ScheduledNote(0, 0.1, 60, 100, 1, 1)]).shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("False PortAudio is not available (PortAudio library not found)")
    assert lines[1].startswith("unavailable: PortAudio is not available")
    assert lines[2] == f"({math.ceil((0.1 + TIMBRES['pluck'].release_s) * SR)}, 2)"
    assert "Traceback" not in result.stderr


# -- live, through JACK ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jack_audio(jack_server):
    """sounddevice with PortAudio re-scanned now that the JACK server runs: its JACK device."""
    import sounddevice as sd
    sd._terminate()
    sd._initialize()
    jack = [d for d in sd.query_devices() if "JACK" in sd.query_hostapis(d["hostapi"])["name"]]
    assert jack, "PortAudio lists no JACK device although a JACK server runs"
    yield sd, jack[0]["index"]
    # PortAudio aborts the process (an assert in pa_jack.c) when at exit it closes a JACK client
    # whose server has gone, as this session's server will: close the client now, and leave
    # PortAudio initialised without JACK.
    sd._terminate()
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = "folk-instrument-no-server"
    try:
        sd._initialize()
    finally:
        os.environ["JACK_DEFAULT_SERVER"] = previous


def _ports() -> set[str]:
    return set(subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10).stdout.split())


class Recorder:
    """A second JACK client (a PortAudio input stream) that records what the synth plays, with
    the clock time of every frame."""

    def __init__(self, sd, device: int):
        self.blocks: list[tuple[int, float, np.ndarray]] = []  # (position, when it was captured, frames)
        self.position = 0
        before = _ports()
        self.stream = sd.InputStream(device=device, samplerate=SR, channels=2, dtype="float32", callback=self._callback)
        self.ports = sorted(_ports() - before)

    def covers(self, t: float) -> bool:
        """Whether the frames recorded so far reach ``t`` (on clock, placed as ``audio`` places them)."""
        return bool(self.blocks) and self.audio()[1][-1] >= t

    def _callback(self, indata, frames, time_info, status):
        self.blocks.append((self.position, clock() + time_info.inputBufferAdcTime - time_info.currentTime, indata[:, 0].copy()))
        self.position += frames

    def audio(self) -> tuple[np.ndarray, np.ndarray]:
        """The recording and each frame's time on clock. A block's capture time is late by its
        callback's wake-up delay, never early, and the stream loses time now and then: so each
        block's time is the earliest that its neighbours within 10 ms of frames imply."""
        blocks = list(self.blocks)  # the callback may add one meanwhile
        pos = np.array([p for p, _, _ in blocks])
        origin = np.array([t for _, t, _ in blocks]) - pos / SR
        near = np.abs(pos[:, None] - pos[None, :]) <= 10 * MS
        origin = np.where(near, origin[None, :], np.inf).min(axis=1)
        x = np.concatenate([b for _, _, b in blocks])
        t = np.concatenate([o + (p + np.arange(len(b))) / SR for o, (p, _, b) in zip(origin, blocks)])
        return x, t


def test_a_missing_device_is_reported_in_one_line(jack_audio):
    ok, why = audio_available("no-such-device")
    assert not ok and "no-such-device" in why and "\n" not in why
    with pytest.raises(AudioUnavailable, match="no-such-device"):
        Synth(device="no-such-device")


@pytest.mark.realtime
def test_live_synth_sounds_through_jack_at_the_notes_times_and_panics(jack_audio):
    sd, device = jack_audio
    ok, why = audio_available()
    assert ok and "JACK Audio Connection Kit" in why, why
    recorder = Recorder(sd, device)
    before = _ports()
    synth = Synth(device=device, timbre="pluck")
    synth_ports = sorted(p for p in _ports() - before)
    assert isinstance(synth, Output)
    assert synth.status() == "audio: JACK Audio Connection Kit (system), 48000 Hz, pluck"
    assert len(synth_ports) == 2 and len(recorder.ports) == 2, (synth_ports, recorder.ports)
    recorder.stream.start()
    synth.start(clock())
    for out, inp in zip(synth_ports, recorder.ports):
        subprocess.run(["jack_connect", out, inp], check=True, timeout=10)
    t0 = clock() + 0.3
    a, b = note(t0, t0 + 0.15, 57, 110), note(t0 + 0.8, t0 + 5.0, 64, 110)
    synth.schedule(a)
    synth.schedule(b)
    panic = t0 + 1.1
    time.sleep(max(0.0, panic - clock()))  # paces the stimulus: the panic comes at its time, in the long note
    synth.panic(panic)
    wait_for(lambda: recorder.covers(panic + 0.3), 10, "the recording past the panic")
    synth.close(clock())
    assert synth.status().startswith("audio: closed (")
    recorder.stream.stop()
    recorder.stream.close()
    x, t = recorder.audio()

    def peak(start: float, end: float) -> float:
        sel = (t >= start) & (t < end)
        assert sel.sum() > 0.25 * (end - start) * SR, "the recording does not cover this stretch"
        return float(np.abs(x[sel]).max())

    def onset(n: ScheduledNote) -> float:
        after = np.flatnonzero((t > n.on - 0.1) & (np.abs(x) > 1e-3))
        return float(t[after[0]])

    # Timing tolerance: a JACK dummy server on a loaded 2-core machine loses time many times a
    # second, which both the synth's and the recorder's mappings follow only within ~10 ms.
    assert peak(t0 - 0.25, t0 - 0.03) < 1e-4  # silence before the first note
    for n in (a, b):
        assert abs(onset(n) - n.on) < 0.025, (onset(n) - n.on)
        assert peak(n.on + 0.02, n.on + 0.1) > 0.02  # and it sounds
    assert peak(a.off + 0.35, b.on - 0.03) < 1e-4  # released: silence between the notes
    assert peak(panic - 0.06, panic - 0.03) > 0.02  # the long note sounds until the panic...
    # ...and is silent once the ring's frames rendered before the panic have played and the fade has
    assert peak(panic + synth.lead_s + PANIC_S + 0.01, panic + 0.3) < 1e-4
    # the fade itself, in recorded frames: from half the level to silence within 20 ms
    around = np.flatnonzero((t > panic - 0.1) & (t < panic + 0.2))
    level = np.abs(x[around])
    half = around[np.flatnonzero(level > 0.5 * peak(panic - 0.06, panic - 0.03))[-1]]
    silent = around[np.flatnonzero(level > 1e-4)[-1]]
    assert 0 <= silent - half < 20 * MS, (silent - half) / MS
    cpu = np.array([c for _, c in synth.callback_times])
    assert len(cpu) > 100 and np.median(cpu) < 0.5 * 256 / SR  # far below the block's 5.3 ms
