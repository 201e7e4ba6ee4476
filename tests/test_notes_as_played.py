"""Notes as a player plays them, whatever the network writes: chords of at most four, the port's
budget sheds note-ons and never a note-off, and twenty seconds at temperature 2 and 200 BPM through
JACK leaves no note hanging, no more than eight at once, and the listener hearing the recording."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from instrument.timing import Scheduler, clock
from instrument.midi.messages import ALL_NOTES_OFF, CONTROL, NOTE_OFF, NOTE_ON
from instrument.model import vocab
from instrument.model.grammar import GrammarGuard
from instrument.music.phrasing import ScheduledNote
from instrument.midi.output import NOTE_ON_BUDGET
from bench.harness.audio import JackRecorder
from bench.harness.midi import notes_in
from bench.harness.jack_server import realtime_jack_server
from bench.harness.midi import heard_notes, losses_not_in_stalls, match_notes, midi_port, Receiver, sounding_after
from bench.harness.wait import wait_for
from tests.player import play
from tests.timing import machine_jitter, timing_problem

# listener minus recording, each note's onset and length: the port's timing thread (0.5 ms) and
# JACK's delivery (a period or two) as in tests/test_midi_port.py, plus the machine's measured jitter
TYPICAL_S, WORST_S = 0.002, 0.02


def test_the_guard_closes_a_chord_at_four_notes():
    guard = GrammarGuard()
    for token in ("<s>", "M:4/4", "K:Cmaj", "["):
        guard.push(vocab.INDEX[token])
    pitches = vocab.class_mask(vocab.TokenClass.PITCH)
    for token in ("C", "E", "G", "c"):
        assert guard.allowed()[pitches].all()
        guard.push(vocab.INDEX[token])
    allowed = guard.allowed()
    assert not allowed[pitches].any() and allowed[vocab.INDEX["]"]] and allowed[vocab.INDEX["2"]]
    guard.push(vocab.INDEX["2"])
    assert np.flatnonzero(guard.allowed()).tolist() == [vocab.INDEX["]"]]


def test_the_guard_always_allows_a_token_whatever_was_forced_or_sampled_unguarded_before():
    """Forced tokens and the unguarded stretch before the guard is turned on can leave any state
    (a full chord then a rest, a bar inside a chord): the next token must still be drawable."""
    rng = np.random.default_rng(5)
    guard = GrammarGuard()
    for token in ("<s>", "M:4/4", "K:Cmaj", "[", "C", "E", "G", "c", "z"):
        guard.push(vocab.INDEX[token])
    assert np.flatnonzero(guard.allowed()).tolist() == [vocab.INDEX["]"]]  # full chord, then a rest
    guard.push(vocab.INDEX["|"])  # a bar inside the chord closes it, as the note rules play it
    assert guard.allowed()[vocab.class_mask(vocab.TokenClass.PITCH)].all() and not guard.allowed()[vocab.INDEX["]"]]
    body = np.flatnonzero(~vocab.class_mask(vocab.TokenClass.START, vocab.TokenClass.METER, vocab.TokenClass.MODE))
    for _ in range(20000):
        guard.push(int(rng.choice(body)))
        assert guard.allowed().any(), (guard.last, guard.in_chord, guard.chord_pitches, guard.tuplet_left)


def test_a_lost_note_is_excused_only_by_a_server_xrun_when_it_was_due():
    recorded = [(0.0, 0.1, 60, 0), (1.0, 1.1, 62, 0), (2.0, 2.1, 64, 0)]
    heard = [(10.0, 10.1, 60, 0), (12.0, 12.1, 64, 0)]
    pairs = [(heard[0], recorded[0]), (heard[1], recorded[2])]
    assert losses_not_in_stalls(recorded, pairs, 10.0, [11.02], window=0.05) == []
    assert losses_not_in_stalls(recorded, pairs, 10.0, [11.5, 12.0], window=0.05) == [recorded[1]]
    assert losses_not_in_stalls(recorded, pairs, 10.0, [], window=0.05) == [recorded[1]]


@pytest.fixture(scope="module")
def jack(jack_server):
    with realtime_jack_server():
        yield jack_server


def test_the_port_budget_sheds_note_ons_and_sends_every_note_off(jack, caplog):
    scheduler = Scheduler()
    scheduler.start()
    receiver = Receiver("budget-receiver", "in")
    port = midi_port("budget-receiver", scheduler)
    try:
        t = clock() + 0.2
        port.start(t)
        count = 2000  # 14 KB of note-ons in half a second: far over the budget
        for i in range(count):
            on = t + i * 0.00025
            port.schedule(ScheduledNote(on, on + 0.05, 40 + i % 48, 80, 1, 1))
        with caplog.at_level(logging.WARNING, logger="instrument.midi.output"):
            # the watchdog's round ends: it says what it shed
            wait_for(lambda: any("note-ons shed" in r.getMessage() for r in caplog.records), 30, "the shed note-ons logged")
        port.panic(clock())
        # the panic's All Notes Off comes after every message due before it (the last note-off was due
        # long before): once it is heard, everything is
        wait_for(lambda: receiver.of(CONTROL), 10, "the panic's All Notes Off")
    finally:
        port.close(clock())
        scheduler.stop()
        receiver.close()
    ons = receiver.of(NOTE_ON)
    offs = receiver.of(NOTE_OFF)
    shed = port.link.shed
    assert shed > 0 and len(ons) + shed == count
    assert len(ons) * 7 <= 2 * NOTE_ON_BUDGET  # at most two rounds' budget
    assert len(offs) >= len(ons) and not sounding_after(receiver.messages)  # every note-on has its note-off
    assert any("note-ons shed" in r.getMessage() and "every note-off was sent" in r.getMessage() for r in caplog.records)
    assert "note-ons shed" in port.status()


@pytest.mark.realtime
def test_twenty_seconds_at_temperature_2_and_200_bpm_through_jack(jack, tmp_path):
    """With the shipped model at its wildest: no note sounding over 5 s, at most 8 at once,
    the listener's notes the recording's (pitch, order, onset and note-off) but for a note lost in
    a cycle the server reported missed, nothing shed."""
    take = tmp_path / "hot.mid"
    receiver = Receiver("hot-receiver", "in")
    bare = JackRecorder("hot-xruns", record=False, server=jack)  # the server's xruns, as every client hears of them
    try:
        with machine_jitter() as jitter:
            proc = play("--midi-out", "hot-receiver", "--midi-api", "jack", "--no-audio", "--record", str(take),
                        "--tempo", "200", "--temperature", "2", "--seconds", "20", "--seed", "4")
            out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        # play's last message is All Notes Off (sent at its close): once it is heard, everything is
        wait_for(lambda: any(m[1] == ALL_NOTES_OFF for _, m in receiver.of(CONTROL)), 10, "play's closing All Notes Off")
    finally:
        bare.close()  # first: the receiver's close holds the GIL while JACK waits on every client's callback
        receiver.close()
    assert "shed" not in err
    notes, most, still = heard_notes(receiver.messages)
    # every note-on had its own note-off, but for one lost in a cycle the server missed (the
    # closing All Notes Off, heard, ends such a note for any listener)
    hanging = sounding_after(receiver.messages)
    assert not still and sum(hanging.values()) <= len(bare.xrun_times), (hanging, bare.xrun_times)
    assert most <= 8, most
    assert max(off - on for on, off, _, _ in notes) < 5.0
    recorded = [(on, off, pitch, channel - 1) for on, off, pitch, _, channel in notes_in(take)[0]]
    pairs = match_notes(notes, recorded, window=0.1 + jitter.max)  # the notes of a chord in any order
    assert len(notes) == len(pairs) and len(recorded) > 100, (len(notes), len(recorded), len(pairs))
    offset = float(np.median([h[0] - r[0] for h, r in pairs]))
    # every recorded note heard, but for a note in a cycle the server missed (an xrun, 1 in ~1000
    # notes seen in CI on a VM): none lost otherwise, and never more than 1 in 100
    lost = losses_not_in_stalls(recorded, pairs, offset, bare.xrun_times, window=0.1 + jitter.max)
    assert not lost, f"lost with no server xrun near: {lost[:5]}; xruns at {bare.xrun_times[:10]}"
    assert len(recorded) - len(pairs) <= len(recorded) // 100, (len(recorded), len(pairs), bare.xruns)
    if len(pairs) < len(recorded):
        print(f"{len(recorded) - len(pairs)} of {len(recorded)} notes lost in the server's {bare.xruns} xruns")
    # when each note began and ended (so how long it lasted): as recorded, within the port's budget
    # and what the machine stalled near that moment
    for name, at in (("onsets", 0), ("note-offs", 1)):
        errors = [abs(h[at] - r[at] - offset) for h, r in pairs]
        problem = timing_problem(errors, jitter, TYPICAL_S, WORST_S, due=[r[at] + offset for _, r in pairs])
        assert problem is None, f"{name}: {problem}"
