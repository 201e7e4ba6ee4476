"""Every voice of a band on its own: a channel with its program and pan on the MIDI port (a real
JACK port), a track in the recording (read back with mido), its own FluidSynth instrument, and a
release that ends one voice's notes on every output (a drone at its tune's end, a voice muted)."""

from __future__ import annotations

import contextlib
import time

import mido
import numpy as np
import pytest

from instrument.midi import ports
from instrument.midi.messages import CONTROL, NOTE_OFF, NOTE_ON, PROGRAM
from instrument.music.phrasing import ScheduledNote
from instrument.music.timbres import find_timbre
from instrument.outputs import VoiceSound, pan_cc
from instrument.outputs.recording import Recording
from instrument.outputs.tones import ToneBank
from instrument.timing import Scheduler, clock
from bench.harness.jack_server import realtime_jack_server
from bench.harness.midi import Receiver, midi_port, sounding_after
from bench.harness.wait import wait_for

TRIO = (VoiceSound(1, "lead", 1, find_timbre("fiddle"), 110, -0.3), VoiceSound(2, "follow", 2, find_timbre("flute"), 73, 0.3),
        VoiceSound(3, "chords", 3, find_timbre("guitar"), 25))
START = 1000.0


def note(on, off, pitch, voice, channel=None, velocity=90) -> ScheduledNote:
    return ScheduledNote(on, off, pitch, velocity, channel or voice, 1, voice)


def test_pan_is_cc_10_centred_at_64():
    assert (pan_cc(-1.0), pan_cc(0.0), pan_cc(1.0), pan_cc(0.3)) == (0, 64, 127, 83)


def test_a_recording_of_a_band_has_a_conductor_and_a_track_per_voice_named_by_its_role(tmp_path):
    rec = Recording(tmp_path / "band.mid", voices=TRIO, qpm=120.0)
    rec.start(START)
    rec.schedule(note(START + 0.0, START + 0.5, 76, 1))
    rec.schedule(note(START + 0.0, START + 0.5, 72, 2))
    rec.schedule(note(START + 0.0, START + 1.0, 48, 3))
    rec.schedule(note(START + 0.5, START + 9.0, 55, 3))  # a held note ...
    rec.release(3, START + 2.0)  # ... that its voice's release ends
    rec.schedule(note(START + 2.5, START + 3.0, 43, 3))  # after the release: it sounds
    rec.close(START + 4.0)
    song = mido.MidiFile(rec.path)
    assert song.type == 1 and [t.name for t in song.tracks] == ["folk-instrument", "lead", "follow", "chords"]
    assert [m.type for m in song.tracks[0] if m.type in ("set_tempo", "marker")] == ["set_tempo", "marker"]
    for track, voice in zip(song.tracks[1:], TRIO):
        head = [m for m in track if m.type in ("program_change", "control_change")]
        assert head == [mido.Message("program_change", channel=voice.channel - 1, program=voice.program),
                        mido.Message("control_change", channel=voice.channel - 1, control=10, value=pan_cc(voice.pan))]
    t, chords = 0, []
    for m in song.tracks[3]:
        t += m.time
        if m.type in ("note_on", "note_off"):
            chords.append((round(mido.tick2second(t, song.ticks_per_beat, 500000), 3), m.type, m.note))
    assert chords == [(0.0, "note_on", 48), (0.5, "note_on", 55), (1.0, "note_off", 48), (2.0, "note_off", 55),
                      (2.5, "note_on", 43), (3.0, "note_off", 43)]


def test_a_voice_s_release_drops_what_it_has_not_started_and_leaves_the_others(tmp_path):
    rec = Recording(tmp_path / "band.mid", voices=TRIO)
    rec.start(START)
    rec.schedule(note(START + 0.0, START + 3.0, 76, 1))
    rec.schedule(note(START + 1.5, START + 2.0, 48, 3))  # handed over, not started at the release
    rec.release(3, START + 1.0)
    rec.close(START + 4.0)
    song = mido.MidiFile(rec.path)
    assert sum(m.type == "note_on" for m in song.tracks[3]) == 0
    assert sum(m.type == "note_on" for m in song.tracks[1]) == 1


def test_the_numpy_synth_ends_a_voice_s_pitch_struck_again_and_releases_a_voice():
    bank = ToneBank(48000, "bow", polyphony=8)
    bank.add(0, 48000 * 60, 48, 90, voice=2)  # a drone note with its ceiling
    bank.add(0, 48000 * 60, 60, 90, voice=1)  # the lead, held
    bank.block(4800)
    bank.add(9600, 48000 * 60, 48, 90, voice=2)  # struck again: the first ends there
    bank.block(9600)
    assert bank.sounding == 3
    held = np.flatnonzero(bank.active & (bank.voice == 2))
    assert sorted(bank.release_at[held].tolist())[0] == 9600
    bank.add(48000, 48100, 50, 90, voice=2)  # handed over, to start after the release
    bank.release(2, 20000)
    assert all(bank.release_at[np.flatnonzero(bank.active & (bank.voice == 2))] <= 20000)
    assert bank.release_at[np.flatnonzero(bank.active & (bank.voice == 1))][0] > 20000  # the lead holds on
    for _ in range(30):
        bank.block(4800)
    assert bank.sounding == 1  # the lead alone; the dropped note never started


def test_fluidsynth_gives_each_voice_its_instrument_on_its_own_channel():
    fluid = pytest.importorskip("instrument.outputs.fluid")
    try:
        fluid.library()
    except fluid.FluidSynthUnavailable as error:
        pytest.skip(str(error))
    engine = fluid._Engine(fluid.find_soundfont(None), TRIO[0].timbre, 48000, fluid.GAIN, False, voices=TRIO)
    try:
        f = engine.f
        import ctypes

        programs = []
        for voice in TRIO:
            sfont, bank, program = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
            f.synth_get_program(engine.synth, fluid.voice_channel(voice.voice), sfont, bank, program)
            programs.append(program.value)
        assert programs == [110, 73, 25]
    finally:
        engine.delete()
    assert [fluid.voice_channel(v) for v in (1, 2, 9, 10, 11)] == [0, 1, 8, 10, 11]  # never the drums' channel 10


@contextlib.contextmanager
def port_and_ear(ear: str, voices=()):
    """A MIDI port on a running timing thread, heard by a JACK receiver ``ear``; all closed after."""
    with realtime_jack_server():
        receiver = Receiver(ear, "in")
        scheduler = Scheduler()
        scheduler.start()
        try:
            port = midi_port("virtual", scheduler, voices=voices)
            receiver.listen_to(f"{ports.PRODUCT}:")
            yield port, receiver
        finally:
            scheduler.stop()
            receiver.close()


@pytest.mark.realtime
def test_the_midi_port_plays_each_voice_on_its_channel_and_releases_one(jack_server):
    with port_and_ear("band-port-receiver", TRIO) as (port, receiver):
        t = clock() + 0.2
        port.start(t)
        port.schedule(note(t + 0.05, t + 3.0, 76, 1))
        port.schedule(note(t + 0.05, t + 3.0, 48, 3))  # a held note of voice 3 ...
        port.schedule(note(t + 0.6, t + 0.8, 50, 3))  # ... and one it would start later
        assert wait_for(lambda: len(receiver.of(NOTE_ON)) == 2, timeout=10)
        port.release(3, clock())
        assert wait_for(lambda: any(m == [NOTE_OFF | 2, 48, 0] for _, m in receiver.messages), timeout=10)
        time.sleep(max(0.0, t + 0.9 - clock()))  # paces the stimulus: past the time of the note the release dropped
        got = [m for _, m in receiver.messages]
        assert [PROGRAM, 110] in got and [PROGRAM | 1, 73] in got and [PROGRAM | 2, 25] in got
        assert [CONTROL, 10, pan_cc(-0.3)] in got and [CONTROL | 1, 10, pan_cc(0.3)] in got
        assert [NOTE_ON | 2, 50, 90] not in got
        assert list(sounding_after(receiver.messages)) == [(0, 76)]  # the lead holds on
        port.panic(clock())
        assert wait_for(lambda: not sounding_after(receiver.messages), timeout=10)
        offs = {m[0] & 0x0F for _, m in receiver.messages if m[0] & 0xF0 == CONTROL and m[1] == 123}
        assert offs == {0, 1, 2}  # All Notes Off on every voice's channel
        port.close(clock())


def test_a_release_of_one_pitch_ends_that_note_alone_in_the_recording_and_the_synth(tmp_path):
    rec = Recording(tmp_path / "echo.mid")
    rec.start(START)
    rec.schedule(note(START + 0.0, START + 8.0, 62, 1))  # an echoed key, with its ceiling
    rec.schedule(note(START + 0.0, START + 8.0, 66, 1))
    rec.release(1, START + 0.5, 62)  # that key let go
    rec.schedule(note(START + 1.0, START + 1.5, 62, 1))  # struck again later: untouched
    rec.close(START + 2.0)
    song = mido.MidiFile(rec.path)
    t, heard = 0, []
    for m in mido.merge_tracks(song.tracks):
        t += m.time
        if m.type in ("note_on", "note_off"):
            heard.append((round(mido.tick2second(t, song.ticks_per_beat, 500000), 3), m.type, m.note))
    assert (0.5, "note_off", 62) in heard and (1.5, "note_off", 62) in heard and (2.0, "note_off", 66) in heard
    bank = ToneBank(48000, "bow", polyphony=8)
    bank.add(0, 48000 * 8, 62, 90, voice=1)
    bank.add(0, 48000 * 8, 66, 90, voice=1)
    bank.block(480)
    bank.release(1, 4800, 62)
    ends = {int(p): int(r) for p, r in zip(bank.pitch[bank.active], bank.release_at[bank.active])}
    assert ends[62] == 4800 and ends[66] > 4800


@pytest.mark.realtime
def test_the_midi_port_releases_one_pitch_of_a_voice(jack_server):
    with port_and_ear("echo-port-receiver") as (port, receiver):
        t = clock() + 0.2
        port.start(t)
        port.schedule(note(t + 0.05, t + 8.0, 62, 1))
        port.schedule(note(t + 0.05, t + 8.0, 66, 1))
        assert wait_for(lambda: len(receiver.of(NOTE_ON)) == 2, timeout=10)
        port.release(1, clock(), 62)
        assert wait_for(lambda: any(m == [NOTE_OFF, 62, 0] for _, m in receiver.messages), timeout=10)
        assert list(sounding_after(receiver.messages)) == [(0, 66)]
        port.close(clock())
        assert wait_for(lambda: not sounding_after(receiver.messages), timeout=10)
