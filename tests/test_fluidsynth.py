"""FluidSynth as the built-in sound: ``play`` heard by an independent JACK recorder with the notes of
its own MIDI recording at their times, ``render`` through the same synth, folk timbres, and the numpy
synth when libfluidsynth is really missing."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import pytest

from instrument.music.timbres import GM_TIMBRES, find_timbre
from instrument.timing import clock
from instrument.music.phrasing import ScheduledNote
from tests.helpers import ROOT, run_cli
from tests.timing import Jitter, machine_jitter, timing_problem

fluid = pytest.importorskip("instrument.outputs.fluid")
ok, why = fluid.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)
SR = 48000
QUIET = ("--quiet", "--no-osc", "--no-myo", "--midi-in", "none", "--midi-out", "none")


def note(on: float, off: float, pitch: int = 60, velocity: int = 100) -> ScheduledNote:
    return ScheduledNote(on=on, off=off, pitch=pitch, velocity=velocity, channel=1, tune=1)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
        return data.reshape(-1, w.getnchannels())


def spectrum_db(x: np.ndarray) -> np.ndarray:
    """Average magnitude spectrum in dB (4096-point frames), normalised to its loudest bin."""
    mono = x.mean(axis=1)
    frames = mono[: len(mono) // 4096 * 4096].reshape(-1, 4096)
    s = np.abs(np.fft.rfft(frames * np.hanning(4096), axis=1)).mean(axis=0) + 1e-9
    return 20 * np.log10(s / s.max())


# -- offline -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fiddle", "tin-whistle", "harp", "piano"])
def test_render_plays_the_pitch_asked_for(name):
    audio = fluid.render_with_fluidsynth([note(0.0, 0.8, 69, 100)], find_timbre(name), SR, reverb=False)
    seg = audio[int(0.2 * SR): int(0.7 * SR), 0]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 8 * len(seg)))
    freqs = np.fft.rfftfreq(8 * len(seg), 1 / SR)
    # the fundamental or a harmonic of 440 Hz is the strongest peak (a whistle sits an octave up)
    peak = freqs[(freqs > 100) & (freqs < 4000)][np.argmax(spec[(freqs > 100) & (freqs < 4000)])]
    ratio = peak / 440.0
    assert abs(ratio - round(ratio)) < 0.01 and round(ratio) >= 1, (name, peak)


def test_render_starts_each_note_within_a_tick_and_a_block_of_its_time_and_velocity_sets_loudness():
    timbre = find_timbre("piano")
    for t in (0.1, 0.2345, 0.5001, 1.0107):
        x = np.abs(fluid.render_with_fluidsynth([note(t, t + 0.15, 60)], timbre, SR, start=0.0, reverb=False)).max(axis=1)
        first = np.flatnonzero(x > 0)[0] / SR
        # the sequencer ticks in whole milliseconds and starts notes at 64-sample blocks: never
        # early, late by at most 1 ms + 64 samples (+ a block for the event to reach FluidSynth's synthesis)
        assert 0 <= first - t < 0.001 + 2 * 64 / SR, (t, (first - t) * 1000)
    peaks = [np.abs(fluid.render_with_fluidsynth([note(0, 0.2, 60, v)], timbre, SR, reverb=False)).max() for v in (30, 60, 90, 127)]
    assert all(a < b for a, b in zip(peaks, peaks[1:])) and peaks[-1] > 3 * peaks[0], peaks  # louder with velocity
    tail = fluid.render_with_fluidsynth([note(0, 0.2, 60)], timbre, SR, reverb=True)
    assert np.abs(tail[-480:]).max() < 1e-3 and len(tail) < (0.2 + 3.0) * SR + 4096  # rendered until it died away


def test_timbres_sound_different_and_a_second_note_on_the_same_key_is_not_cut_short():
    spectra = {n: spectrum_db(fluid.render_with_fluidsynth([note(0, 0.6, 62)], find_timbre(n), SR, reverb=False)) for n in ("fiddle", "flute", "banjo")}
    for a, b in (("fiddle", "flute"), ("fiddle", "banjo"), ("flute", "banjo")):
        assert np.sqrt(np.mean((spectra[a] - spectra[b]) ** 2)) > 6, (a, b)  # dB apart on average
    # the first note's note-off (at 0.5 s) falls inside the second (0.3..1.0 s): it must not end it
    audio = fluid.render_with_fluidsynth([note(0.0, 0.5, 62), note(0.3, 1.0, 62)], find_timbre("fiddle"), SR, start=0.0, reverb=False)
    level = np.abs(audio[:, 0])
    assert level[int(0.7 * SR): int(0.95 * SR)].max() > 0.3 * level[int(0.35 * SR): int(0.45 * SR)].max()


def test_render_command_with_fiddle_differs_from_the_numpy_synth(small_checkpoint, tmp_path):
    outs = {}
    for synth in ("fluidsynth", "numpy"):
        outs[synth] = tmp_path / f"{synth}.wav"
        result = run_cli("render", "--model", str(small_checkpoint), "--bars", "4", "--tempo", "120", "--seed", "4",
                         "--timbre", "fiddle", "--synth", synth, "--out", str(outs[synth]))
        assert result.returncode == 0, result.stderr
        assert ("FluidSynth, fiddle from" if synth == "fluidsynth" else "numpy synth, bow timbre for fiddle") in result.stderr
    a, b = read_wav(outs["fluidsynth"]), read_wav(outs["numpy"])
    assert np.abs(a).max() > 0.05 and np.abs(b).max() > 0.05  # both sound
    assert np.sqrt(np.mean((spectrum_db(a) - spectrum_db(b)) ** 2)) > 6  # and not alike
    auto = tmp_path / "auto.wav"
    result = run_cli("render", "--model", str(small_checkpoint), "--bars", "4", "--tempo", "120", "--seed", "4",
                     "--timbre", "Fiddle", "--out", str(auto))
    assert result.returncode == 0 and "FluidSynth" in result.stderr  # the default where it is installed
    assert np.array_equal(read_wav(auto), a)  # and offline renders are repeatable


def test_loading_the_library_writes_nothing_to_stdout_even_where_pyfluidsynth_would_print():
    """pyfluidsynth prints where it found the library when CI is set; our stdout carries ABC and JSON."""
    code = "import instrument.outputs.fluid as f; f.library(); print('ok')"
    probe = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), CI="true"),
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout == "ok\n", probe.stdout


def test_timbre_list_and_bad_timbre_or_soundfont_are_one_line(tmp_path):
    listed = run_cli("play", "--timbre", "list")
    assert listed.returncode == 0 and all(name in listed.stdout for name in GM_TIMBRES)
    assert "uilleann-pipes" in listed.stdout and "110 Bag pipe" in listed.stdout
    bad = run_cli("render", "--out", str(tmp_path / "x.wav"), "--timbre", "kazoo")
    assert bad.returncode == 2 and "unknown timbre 'kazoo'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = run_cli("render", "--out", str(tmp_path / "x.wav"), "--bars", "1", "--soundfont", str(tmp_path / "no.sf2"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr


def test_a_soundfont_is_known_by_its_header_and_another_file_is_named_never_quoted(tmp_path):
    fake = tmp_path / "fake.sf2"
    fake.write_text("root:x:0:0:SECRET:/root:/bin/bash\n")
    for command in (("render", "--out", str(tmp_path / "x.wav"), "--bars", "1"),
                    ("play", "--midi-out", "none", "--no-web", "--no-osc", "--no-myo", "--midi-in", "none", "--seconds", "1")):
        result = run_cli(*command, "--soundfont", str(fake))
        assert result.returncode == 2 and f"--soundfont {fake}: not a SoundFont (no RIFF sfbk header)" in result.stderr
        assert "SECRET" not in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    real = fluid.find_soundfont()  # the system's General MIDI SoundFont: a RIFF sfbk file
    assert fluid.not_a_soundfont(real) is None
    assert fluid.not_a_soundfont(fake) is not None
    truncated = tmp_path / "truncated.sf2"
    truncated.write_bytes(real.read_bytes()[:11])
    assert fluid.not_a_soundfont(truncated) == "not a SoundFont (no RIFF sfbk header)"


# -- live, through JACK ----------------------------------------------------------------------------

def recorded_notes(path: Path) -> list[ScheduledNote]:
    """The notes of a .mid file (seconds from its start), read back with mido."""
    now, held, out = 0.0, {}, []
    for message in mido.MidiFile(path):
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            held[message.note] = (now, message.velocity)
        elif message.type in ("note_on", "note_off") and message.note in held:
            on, velocity = held.pop(message.note)
            out.append(ScheduledNote(on, now, message.note, velocity, 1, 1))
    return sorted(out, key=lambda n: n.on)


# What the heard timing is allowed beyond the machine's own jitter: FluidSynth's sequencer ticks in
# whole milliseconds and starts notes at 64-sample blocks (1.3 ms), and the lead estimate and the
# recorder's placement of its blocks on the clock add a fraction of a millisecond each. Notes started
# by a Python call when due would scatter over the JACK period (5.3 ms).
HEARD_MEDIAN_S, HEARD_WORST_S = 0.001, 0.003
# A note sounding near a missed cycle is not judged: the server's clock may have jumped, and the lead
# estimate follows within its window (fluid.LEAD_WINDOW_S). The run's missed cycles are judged
# instead, against those of a bare client alone on the same server for as long.
MISSED_CYCLE_BEFORE_S = 0.1
# Every other note is judged against what was measured near it: the machine's stalls (a bare
# sleep-until loop) while the recorder placed it, and how far the server's timeline moved (as the
# recorder heard it: time the server lost) over the window in which FluidSynth's lead estimate
# follows such a move.
STALL_AROUND_S = 0.05  # the recorder's placement of a note: its level curve 10 ms before to 40 ms after
NEIGHBOURS_S = 1.5  # the notes a note's lag is judged against: about ten either side at 100 BPM
MOVED_BEFORE_S = fluid.LEAD_WINDOW_S
SETTLE_S = 1.0  # after our clients join the server (a change of its graph), before its missed cycles are counted
PLAY_S = 12  # some 36 notes at 100 BPM
# play with FluidSynth placing every note up to 15 ms late at random: a regression the check must catch
MISPLACED = ("import dataclasses, random, runpy, sys; import instrument.outputs.fluid as f; "
             "real = f.FluidSynth.schedule; rng = random.Random(1); "
             "f.FluidSynth.schedule = lambda self, n: real(self, dataclasses.replace("
             "n, on=n.on + (d := rng.uniform(0, 0.015)), off=n.off + d)); "
             "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
# the stimulus, a regression the xrun check must catch: a JACK client that holds up every 20th cycle
# for 12 ms (a 256-frame cycle is 5.3 ms), for as many seconds as asked (both sleeps are that stimulus)
HOG = ("import sys, time, jack; c = jack.Client('hog', no_start_server=True, servername=sys.argv[1]); n = [0]\n"
       "def process(frames):\n    n[0] += 1\n    if n[0] % 20 == 0: time.sleep(0.012)\n"
       "c.set_process_callback(process); c.activate(); time.sleep(float(sys.argv[2])); c.deactivate()")


@dataclass
class Heard:
    """A ``play`` run heard through JACK: each judged note's lag (heard minus recorded) with when it
    was heard and what was measured near it (the machine's stalls, the time the server lost), the
    machine's jitter over the run, and the server's missed cycles during it and with a bare client
    alone (before and after, as long in all as the run)."""

    notes: int
    found: int
    lags: list[float]
    heard_at: list[float]  # on clock
    near: list[float]  # the machine's stall or the server's timeline moving near each judged note, the larger
    judged_out: int  # notes found but sounding near a missed cycle
    jitter: Jitter
    missed_during: list[float]
    played_s: float
    missed_alone: list[float]
    alone_s: float

    def __repr__(self) -> str:
        disturbed = sum(1 for x in self.near if x > HEARD_WORST_S)
        return (f"{self.found} of {self.notes} notes found, {len(self.lags)} judged ({self.judged_out} near a missed "
                f"cycle left out, {disturbed} near a stall or a move of the server's time over {HEARD_WORST_S * 1e3:g} ms); "
                f"{len(self.missed_during)} xruns in {self.played_s:.1f} s of play, "
                f"{len(self.missed_alone)} in {self.alone_s:.0f} s alone; {self.jitter}")

    def xrun_problem(self) -> str | None:
        from bench.harness.audio import xrun_problem

        return xrun_problem(self.missed_during, self.played_s, self.missed_alone, self.alone_s)

    def timing_problem(self) -> str | None:
        """Each note's deviation from the lag of the notes around it (within NEIGHBOURS_S): the
        median within our budget plus the machine's, and each within our budget plus what was
        measured near it, but for the furthest tenth (a note whose sound the reference matches
        poorly, such as a short one in the last one's tail, can be misplaced by the search).
        Judged against its neighbours, not the run's median lag: what a listener hears is the
        rhythm, and on a loaded machine FluidSynth's lead estimate may place a stretch of notes
        a JACK period later until it follows (a synth's latency moving once), where notes
        started when due would scatter over every period."""
        at = np.asarray(self.heard_at)
        lags = np.asarray(self.lags)
        deviations = [abs(lag - float(np.median(lags[np.abs(at - t) <= NEIGHBOURS_S]))) for t, lag in zip(at, lags)]
        return timing_problem(deviations, self.jitter, HEARD_MEDIAN_S, HEARD_WORST_S, due=self.heard_at,
                              spare=0.1, near=self.near)


def hear_play(server: str, tmp_path: Path, checkpoint: Path, python: tuple[str, ...] = (), alone_s: float = PLAY_S) -> Heard:
    """Run ``play`` through FluidSynth on ``server`` for PLAY_S seconds (``python``: what runs
    run.py, default the interpreter itself), recorded by an independent JACK client while a bare
    one notes the server's missed cycles (also for ``alone_s`` in all before and after play) and a
    bare sleep-until loop measures the machine's jitter; find each note of play's own MIDI
    recording in the audio."""
    from bench.harness.audio import envelope, JackRecorder, note_lag

    env = dict(os.environ, PYTHONUNBUFFERED="1", JACK_DEFAULT_SERVER=server)
    recorder = JackRecorder("fluid-recorder", server=server)
    bare = JackRecorder("fluid-bare", record=False, server=server)
    take = tmp_path / "take.mid"
    try:
        time.sleep(SETTLE_S + alone_s / 2)  # a measured stretch: the bare client alone (after the settling)
        missed_alone = [x for x in bare.xrun_times if x > bare.activated + SETTLE_S]
        with machine_jitter() as jitter:
            proc = subprocess.Popen([*(python or (sys.executable,)), str(ROOT / "run.py"), "play", *QUIET,
                                     "--synth", "fluidsynth", "--timbre", "piano", "--model", str(checkpoint),
                                     "--record", str(take), "--seconds", str(PLAY_S), "--tempo", "100",
                                     "--set", "articulation=0.5", "--seed", "3"],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            recorder.connect_from("folk-instrument")
            connected = clock()  # a change of the server's graph, like a missed cycle to the lead estimate
            started, mark = time.monotonic(), len(bare.xrun_times)
            out, err = proc.communicate(timeout=120)
            played_s, missed_during = time.monotonic() - started, bare.xrun_times[mark:]
        assert proc.returncode == 0, err
        assert "audio: FluidSynth" in err and "(jack)" in err, err
        mark = len(bare.xrun_times)
        time.sleep(alone_s / 2)  # a measured stretch: the bare client alone again
        missed_alone += bare.xrun_times[mark:]
    finally:
        recorder.close()
        bare.close()
    x, t = recorder.audio()
    cycles, origins = recorder.origins()
    assert np.abs(x).max() > 0.05, "the recording is silent"
    notes = recorded_notes(take)
    assert len(notes) >= 12
    # the same notes rendered offline by the same synth are the reference: each note is found in
    # the recording by sliding its rendered level curve over the recording's (0.25 ms steps)
    pad = 0.1
    ref = envelope(fluid.render_with_fluidsynth(notes, find_timbre("piano"), SR, start=-pad), SR)
    live = envelope(x, SR)
    level = np.abs(x).max(axis=1)
    first = t[np.flatnonzero(level > 1e-3)[0]]  # the recording's first sound is the first note
    lags, heard_at, near, found, judged_out, lag = [], [], [], 0, 0, first - notes[0].on
    missed = [connected, *missed_during]
    for n in notes:  # each note is looked for where the last one was found: a lost stretch moves them all
        found_at = note_lag(live, t[0], ref, n.on + pad, n.on + lag)
        if found_at is None:
            continue
        found += 1
        lag = found_at - n.on
        if any(m - MISSED_CYCLE_BEFORE_S <= found_at <= m + fluid.LEAD_WINDOW_S for m in missed):
            judged_out += 1
            continue
        stall = jitter.near(found_at - STALL_AROUND_S, found_at + STALL_AROUND_S)
        around = origins[np.searchsorted(cycles, found_at - MOVED_BEFORE_S): np.searchsorted(cycles, found_at + STALL_AROUND_S)]
        moved = float(around.max() - around.min()) if len(around) else 0.0
        lags.append(lag)
        heard_at.append(found_at)
        near.append(max(stall, moved))
    return Heard(len(notes), found, lags, heard_at, near, judged_out, jitter, missed_during, played_s, missed_alone,
                 alone_s)


@pytest.mark.realtime
def test_play_is_heard_by_an_independent_jack_recorder_at_the_recorded_notes_times(jack_256, tmp_path, plain_checkpoint):
    heard = hear_play(jack_256, tmp_path, plain_checkpoint)
    assert heard.found >= 0.9 * heard.notes, heard
    problem = heard.xrun_problem()
    assert problem is None, problem
    # notes near a missed cycle are left out: no more than half of them on a machine whose missed
    # cycles are rare enough for the bare client's count to judge the run's (as the check above did)
    assert len(heard.lags) >= 0.5 * heard.found, heard
    problem = heard.timing_problem()
    assert problem is None, f"{problem}; {heard}"


@pytest.mark.realtime
def test_notes_placed_up_to_15_ms_late_fail_the_heard_timing_check(jack_256, tmp_path, plain_checkpoint):
    """The timing check above fails a FluidSynth output that misplaces notes (each up to 15 ms late)."""
    heard = hear_play(jack_256, tmp_path, plain_checkpoint, python=(sys.executable, "-c", MISPLACED), alone_s=0)
    if len(heard.lags) < 0.5 * heard.notes:  # as the check above would not judge them either
        pytest.skip(f"the machine too disturbed to judge: {heard}")
    problem = heard.timing_problem()
    assert problem is not None and "median" in problem, (problem, heard)


@pytest.mark.realtime
def test_a_client_that_holds_up_cycles_fails_the_xrun_check(jack_256):
    """The xrun check above fails a run during which a client holds up cycles, counted by the same
    bare client against its own count alone."""
    from bench.harness.audio import JackRecorder, xrun_problem

    bare = JackRecorder("hog-bare", record=False, server=jack_256)
    try:
        time.sleep(SETTLE_S + 5.0)  # a measured stretch: the bare client alone (after the settling)
        alone = [x for x in bare.xrun_times if x > bare.activated + SETTLE_S]
        mark = len(bare.xrun_times)
        subprocess.run([sys.executable, "-c", HOG, jack_256, "5"], check=True, timeout=60)
        during = bare.xrun_times[mark:]
    finally:
        bare.close()
    problem = xrun_problem(during, 5.0, alone, 5.0)
    assert problem is not None, (len(during), len(alone))


# -- without libfluidsynth -----------------------------------------------------------------------

def _hidden_library_command(args: list[str]) -> tuple[list[str], str]:
    """``args`` run with libfluidsynth really unloadable: in a private mount namespace the library
    file is covered by /dev/null (the dynamic loader then fails on it), where ``unshare`` may do
    that; else with ``ctypes.util.find_library`` finding no FluidSynth (pyfluidsynth's own path)."""
    name = ctypes.util.find_library("fluidsynth")
    real = None
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/lib/x86_64-linux-gnu"):
        if name and os.path.exists(os.path.join(folder, name)):
            real = os.path.realpath(os.path.join(folder, name))
            break
    if real and shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0:
        script = f'mount --bind /dev/null {real} && exec "$@"'
        return ["unshare", "-m", "sh", "-c", script, "sh", *args], "the library file covered by /dev/null"
    code = ("import ctypes.util, runpy, sys; real = ctypes.util.find_library; "
            "ctypes.util.find_library = lambda n: None if 'fluidsynth' in n else real(n); "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    return [args[0], "-c", code, *args[1:]], "find_library patched"


def test_the_gain_parameter_sets_fluidsynths_gain_live(jack_server, small_model):
    """``gain`` is a live parameter like the others: moved during a performance (here as a
    controller would, through the parameters), FluidSynth's own gain follows at once."""
    from instrument.live.engine import Limits
    from instrument.live.params import Parameters
    from instrument.live.performance import Performance
    from instrument.outputs.opening import OutputChoice

    params = Parameters()
    params.set("gain", -6.0, clamp=False)  # as --set gain=-6 does
    performance = Performance(small_model, params, OutputChoice(midi_out="none", audio=True, synth="fluidsynth"),
                              Limits(bars=1))
    try:
        (synth,) = [out for out in performance.opened.outputs if isinstance(out, fluid.FluidSynth)]
        assert synth.gain == pytest.approx(fluid.GAIN * 10 ** (-6 / 20), rel=1e-4)
        params.set("gain", -20.0, source="OSC")
        assert synth.gain == pytest.approx(fluid.GAIN * 10 ** (-20 / 20), rel=1e-4)
        params.set("gain", 40.0, source="OSC")  # clamped to +12 dB, as any live control
        assert synth.gain == pytest.approx(fluid.GAIN * 10 ** (12 / 20), rel=1e-4)
    finally:
        performance.engine.stop("test over")


def test_without_libfluidsynth_play_falls_back_to_the_numpy_synth_and_says_what_to_install(jack_server, tmp_path, small_checkpoint):
    command, how = _hidden_library_command([sys.executable, str(ROOT / "run.py"), "play", *QUIET, "--model",
                                            str(small_checkpoint), "--seconds", "2", "--timbre", "fiddle"])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (how, result.stderr)
    lines = [line for line in result.stderr.splitlines() if "numpy synth" in line]
    assert len(lines) == 1, (how, result.stderr)
    line = lines[0]
    assert "bow timbre for fiddle" in line and "libfluidsynth" in line and "apt-get install libfluidsynth3" in line, line
    check, _ = _hidden_library_command([sys.executable, "-c", "import instrument.outputs.fluid as f; print(f.available())"])
    # CI set: pyfluidsynth then prints where it found the library, which must not reach our stdout
    probe = subprocess.run(check, cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT), CI="true"), capture_output=True,
                           text=True, timeout=60)
    assert probe.stdout.startswith("(False, 'FluidSynth: libfluidsynth"), (how, probe.stdout, probe.stderr)
    forced = subprocess.run(_hidden_library_command([sys.executable, str(ROOT / "run.py"), "render", "--model",
                                                     str(small_checkpoint), "--bars", "1", "--synth", "fluidsynth",
                                                     "--out", str(tmp_path / "x.wav")])[0],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert forced.returncode == 2 and "--synth fluidsynth: FluidSynth: libfluidsynth" in forced.stderr, forced.stderr
