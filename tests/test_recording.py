"""Recordings: the MIDI file holds what was scheduled; the ABC holds every tune, written as it ends."""

from __future__ import annotations

import shutil
import subprocess

import mido
import pytest

from instrument.errors import UsageError
from instrument.music.phrasing import ScheduledNote
from instrument.outputs import Output
from instrument.outputs.recording import Recording, tune_title
from instrument.music.tunes import Tune, parse_tunes
from tests.helpers import DATA
from bench.harness.midi import notes_in
from bench.harness.midi import wait_for

START = 1000.0  # the performance's start on the clock; the file counts from it




def record(tmp_path, notes, close_at, **options):
    rec = Recording(tmp_path / "take.mid", **options)
    assert isinstance(rec, Output)
    rec.start(START)
    for note in notes:
        rec.schedule(note)
    rec.close(close_at)
    return rec


@pytest.mark.parametrize("qpm", [120.0, 47.0, 203.0])
def test_notes_come_back_at_their_scheduled_times(tmp_path, qpm):
    notes = [ScheduledNote(START + 0.1 + i * 0.1237, START + 0.1 + i * 0.1237 + 0.0913, 50 + i, 30 + 7 * i, 1 + i % 3, 1)
             for i in range(12)]
    rec = record(tmp_path, notes, START + 5, program=24, channel=2, qpm=qpm)
    got, others = notes_in(rec.path)
    assert len(got) == len(notes)
    for (on, off, pitch, velocity, channel), note in zip(got, notes):
        assert abs(on - (note.on - START)) < 0.001 and abs(off - (note.off - START)) < 0.001
        assert (pitch, velocity, channel) == (note.pitch, note.velocity, note.channel)
    song = mido.MidiFile(rec.path)
    assert song.type == 0
    tempos = [m for m in song.tracks[0] if m.type == "set_tempo"]
    assert len(tempos) == 1 and abs(mido.tempo2bpm(tempos[0].tempo) - qpm) < 0.01
    programs = [(t, m) for t, m in others if m.type == "program_change"]
    assert programs == [(0.0, mido.Message("program_change", channel=1, program=24))]
    markers = [(t, m.text) for t, m in others if m.type == "marker"]
    assert markers == [(pytest.approx(0.1, abs=0.001), tune_title(1))]


def test_panic_drops_notes_not_started_and_ends_the_sounding_ones(tmp_path):
    rec = Recording(tmp_path / "take.mid")
    rec.start(START)
    rec.schedule(ScheduledNote(START + 0.0, START + 0.5, 60, 80, 1, 1))  # over before the panic
    rec.schedule(ScheduledNote(START + 0.2, START + 3.0, 64, 80, 1, 1))  # sounding at the panic
    rec.schedule(ScheduledNote(START + 0.9, START + 1.2, 67, 80, 2, 1))  # sounding at the panic
    rec.schedule(ScheduledNote(START + 1.5, START + 1.7, 72, 80, 1, 1))  # not started: dropped
    rec.panic(START + 1.0)
    rec.schedule(ScheduledNote(START + 2.0, START + 2.5, 62, 90, 1, 2))  # played after the panic
    rec.close(START + 2.2)  # ends the last one too
    got, _ = notes_in(rec.path)
    assert [(round(on, 3), round(off, 3), pitch) for on, off, pitch, _, _ in got] == [
        (0.0, 0.5, 60), (0.2, 1.0, 64), (0.9, 1.0, 67), (2.0, 2.2, 62)]


def test_a_pitch_struck_again_ends_the_first_as_the_port_plays_it(tmp_path):
    rec = record(tmp_path, [ScheduledNote(START, START + 1.0, 60, 80, 1, 1), ScheduledNote(START + 0.5, START + 1.5, 60, 81, 1, 1)],
                 START + 2)
    got, _ = notes_in(rec.path)
    assert [(round(on, 3), round(off, 3), v) for on, off, _, v, _ in got] == [(0.0, 0.5, 80), (0.5, 1.5, 81)]


def test_abc_is_written_as_each_tune_ends_and_abc2midi_reads_it(tmp_path):
    tunes = parse_tunes((DATA / "folkrnn_v2_samples.txt").read_text())[:3]
    cut = Tune(tunes[2].meter, tunes[2].mode, tunes[2].body[: len(tunes[2].body) // 2], ended=False)
    rec = Recording(tmp_path / "take.mid")
    rec.start(START)
    rec.schedule(ScheduledNote(START, START + 0.2, 60, 80, 1, 1))
    rec.tune(1, tunes[0])
    assert wait_for(lambda: "X:1" in rec.abc_path.read_text(), timeout=5)  # before the end: a crash keeps it
    assert notes_in(rec.path)[0] == [(0.0, 0.2, 60, 80, 1)]  # and the MIDI file so far, complete
    rec.tune(2, tunes[1])
    rec.tune(2, tunes[1])  # the same tune twice is written once
    rec.tune(3, cut)  # cut off when the performance stopped
    rec.close(START + 1)
    rec.close(START + 1)  # idempotent
    text = rec.abc_path.read_text()
    assert text == "\n".join(t.to_abc(n, title=tune_title(n)) for n, t in [(1, tunes[0]), (2, tunes[1]), (3, cut)])
    assert rec.path.exists() and notes_in(rec.path)[0]
    if not shutil.which("abc2midi"):
        pytest.skip("abc2midi is not installed (Debian package abcmidi)")
    for number in (1, 2, 3):
        out = tmp_path / f"tune{number}.mid"
        run = subprocess.run(["abc2midi", str(rec.abc_path), str(number), "-o", str(out)], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0 and "Error" not in run.stdout, run.stdout
        assert notes_in(out)[0], f"abc2midi found no notes in tune {number}"


def test_close_writes_even_an_empty_take_and_later_calls_are_ignored(tmp_path):
    rec = record(tmp_path, [], START + 1)
    rec.schedule(ScheduledNote(START + 2, START + 3, 60, 80, 1, 1))
    rec.tune(1, Tune("4/4", "maj", ["C", "D"]))
    rec.close(START + 4)
    assert notes_in(rec.path)[0] == [] and rec.abc_path.read_text() == ""
    assert not list(tmp_path.glob("*.part"))


def test_an_unwritable_place_is_a_usage_error_at_once(tmp_path):
    with pytest.raises(UsageError, match="--record .*cannot write there"):
        Recording(tmp_path / "no such folder" / "take.mid")
