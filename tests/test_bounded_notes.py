"""Nothing the network writes can silence the instrument: a note, chord or rest lasts at most two bars,
a run of rests holds the model thread back as notes do, ``--seconds`` ends by the clock, and a
performer who turns the rests knob up and back gets the music back within two bars. The notes, the
recording and the ABC of a take agree on what was played, bound and all."""

from __future__ import annotations

import json
import time
import wave

import pytest

from instrument.midi.messages import NOTE_ON
from instrument.music.notes import tune_notes
from instrument.music.phrasing import seconds_per_quarter
from instrument.music.tunes import Tune
from instrument.web.take import read_abc, read_midi
from tests.abc2midi_helpers import ABC2MIDI
from tests.abc_readers import abc2midi_all, ours
from tests.helpers import run_cli
from bench.harness.jack_server import realtime_jack_server
from bench.harness.midi import Receiver
from bench.harness.osc import osc_message
from bench.harness.wait import wait_for
from tests.player import Player, play
from tests.timing import clock, machine_jitter

TEMPO = 200  # BPM, 4/4: a beat 0.3 s, two bars 2.4 s


@pytest.fixture(scope="module")
def jack(jack_server):
    with realtime_jack_server():
        yield jack_server


def test_notes_bounds_a_rest_however_many_durations_follow():
    """``C z 16 16 16 C`` put the second C at beat 2048.5."""
    result = run_cli("notes", input="M:4/4 K:Cmaj C z 16 16 16 C\n\nM:2/4 K:Cmaj C 16 12 9 D\n")
    assert result.returncode == 0, result.stderr
    first, second = json.loads(result.stdout)
    assert [(n["pitch"], n["start"]) for n in first["notes"]] == [(60, 0.0), (60, 8.5)]  # the rest: two bars
    assert [(n["pitch"], n["start"], n["duration"]) for n in second["notes"]] == [(60, 0.0, 4.0), (62, 4.0, 0.5)]


@pytest.mark.realtime
def test_play_seconds_ends_by_the_clock_whatever_the_rests(tmp_path):
    """``play --seconds 120 --set bias.rests=10`` ended after 3 s ("limit reached: 0 notes"): the
    composer ran through the rests without waiting and found its next note minutes ahead."""
    seconds = 8.0
    with machine_jitter() as jitter:
        player = Player(None, "default.yaml", tmp_path, "--seconds", str(seconds), "--set", "bias.rests=10",
                        "--meter", "4/4", "--seed", "1")
        began = clock()  # the performance is open: its clock starts within the preroll (0.2 s)
        try:
            player.proc.wait(timeout=seconds + 60)
        finally:
            ended = clock()
            _, err = player.proc.communicate(timeout=30)
            player.sock.close()
    assert player.proc.returncode == 0 and "limit reached" in err, err
    played = ended - began
    two_bars = 8 * 60 / TEMPO
    # by the clock: not before the end (the machine's stalls aside), and within one note (two bars) and
    # the close after it
    assert seconds - 0.5 - jitter.stalled <= played <= seconds + two_bars + 3.0 + jitter.stalled, (played, jitter)


@pytest.mark.parametrize("rests", ["0", "10"])
def test_render_bars_ends_after_as_many_bars_as_are_heard_rests_or_not(tmp_path, rests):
    """``render --bars 4 --set bias.rests=10`` wrote 2,000 s of silence: only bars in which a note
    began were counted. A bar of rests is a bar heard: the take is four bars long either way."""
    wav = tmp_path / "take.wav"
    done = run_cli("render", "--bars", "4", "--seed", "1", "--meter", "4/4", "--tempo", str(TEMPO),
                   "--set", f"bias.rests={rests}", "--out", str(wav))
    assert done.returncode == 0, done.stderr
    with wave.open(str(wav)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    bar = 4 * 60 / TEMPO
    assert 3 * bar < seconds <= 4 * bar + 2.0, (seconds, done.stdout)  # four bars, and a note's ring-out


@pytest.mark.realtime
def test_rests_up_then_back_and_a_new_tune_bring_notes_within_two_bars(jack, tmp_path):
    """After 3 s at ``bias.rests=10``, moving it back to 0 and firing ``tune.new`` gave 0 notes in the
    next 57 s: the composer had written minutes of rests ahead of what sounded."""
    receiver = Receiver("rests-receiver", "in")
    player = Player(None, "default.yaml", tmp_path, "--midi-out", "rests-receiver", "--midi-api", "jack",
                    "--meter", "4/4", "--seed", "1", "--set", "bias.rests=10")
    try:
        time.sleep(3.0)  # paces the stimulus: 3 s of rests, in which a composer that ran ahead wrote minutes of them
        with machine_jitter() as jitter:
            player.send(osc_message("/bias/rests", 0.0))
            player.send(osc_message("/tune/new"))
            asked = clock()
            heard = lambda: [t for t, m in receiver.of(NOTE_ON) if m[2] > 0 and t > asked]  # noqa: E731
            onsets = wait_for(heard, 20, "a note after the rests knob went back and a new tune", step=0.01)
        two_bars = 8 * 60 / TEMPO
        assert onsets[0] - asked <= two_bars + 0.1 + jitter.stalled, (onsets[0] - asked, jitter)
    finally:
        player.stop()
        receiver.close()


@pytest.mark.skipif(ABC2MIDI is None, reason="abc2midi (Debian package abcmidi) is not installed")
def test_a_takes_notes_recording_and_abc_agree_bound_and_all(tmp_path, plain_checkpoint):
    """A model made to write long notes and rests with the grammar guard off (so durations follow
    durations): each tune's notes as ``notes`` reads its tokens, as the recording has them, and as
    abc2midi reads the take's ABC are the same notes, and none lasts over two bars."""
    take = tmp_path / "take.mid"
    proc = play("--model", str(plain_checkpoint), "--midi-out", "none", "--no-audio", "--record", str(take),
                "--seconds", "10", "--tempo", "320", "--meter", "2/4", "--seed", "2", "--set", "guard=false",
                "--set", "bias.long_notes=4", cwd=tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    spq = seconds_per_quarter(320, "2/4")
    tunes = read_abc(take.with_suffix(".abc"))
    recorded, _ = read_midi(take)
    texts = take.with_suffix(".abc").read_text().split("\n\n")
    readers = abc2midi_all([t for t in texts if t.strip()], tmp_path / "abc2midi")
    compared = bounded = 0
    for tune, theirs in zip(tunes, readers):
        notes = tune_notes(Tune(tune["meter"], tune["mode"], tune["tokens"])).notes
        played = sorted((n for n in recorded if n["tune"] == tune["number"]), key=lambda n: (n["on"], n["p"]))
        if len(played) < 2:
            continue
        assert max(n.duration for n in notes) <= 4.0  # two bars of 2/4
        bounded += sum(1 for n in notes if n.duration == 4.0)
        mine = ours(notes)[: len(played)]  # the last tune was cut where the performance ended
        first = played[0]["on"] - mine[0][0] * spq / 480  # where the tune began (its first note may follow a rest)
        heard = sorted((round((n["on"] - first) / spq * 480), n["p"]) for n in played)
        assert [p for _, p in heard] == [p for _, p, _ in mine], tune["number"]
        assert all(abs(a - m[0]) <= 20 for (a, _), m in zip(heard, mine)), (tune["number"], heard[:8], mine[:8])
        assert theirs is not None and [(o, p) for o, p, _ in theirs][: len(mine)] == [(o, p) for o, p, _ in mine], (
            tune["number"], theirs[:8] if theirs else None, mine[:8])
        compared += len(mine)
    assert compared >= 12 and bounded >= 1, (compared, bounded)
