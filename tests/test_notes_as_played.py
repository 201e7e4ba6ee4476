"""Notes as a player plays them, whatever the network writes: chords of at most four, the port's
budget sheds note-ons and never a note-off, and a minute at temperature 2 and 200 BPM through
JACK leaves no note hanging, no more than eight at once, and the listener hearing the recording."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from instrument.model import vocab
from instrument.model.grammar import GrammarGuard
from instrument.outputs import ScheduledNote
from instrument.outputs.midi_link import NOTE_ON_BUDGET
from instrument.live.scheduler import Scheduler, clock
from tests.midi_helpers import Receiver, realtime_jack_server, wait_for
from tests.test_midi_port import midi_port
from tests.test_play import play, sounding_after
from tests.test_recording import notes_in

NOTE_ON, NOTE_OFF = 0x90, 0x80


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
        with caplog.at_level(logging.WARNING, logger="instrument.midi.ports"):
            time.sleep(2.5)  # the watchdog's round ends: it says what it shed
        port.panic(clock())
        assert wait_for(lambda: any(m[0] & 0xF0 == 0xB0 for _, m in receiver.messages), timeout=3)
        time.sleep(0.1)
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


def test_a_minute_at_temperature_2_and_200_bpm_through_jack(jack, tmp_path):
    """The issue's check, with the shipped model: no note sounding over 5 s, at most 8 at once,
    the listener's notes the recording's (pitch, order, onset and length), nothing shed."""
    take = tmp_path / "hot.mid"
    receiver = Receiver("hot-receiver", "in")
    try:
        proc = play("--midi-out", "hot-receiver", "--midi-api", "jack", "--no-audio", "--record", str(take),
                    "--tempo", "200", "--temperature", "2", "--seconds", "60", "--seed", "4")
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        wait_for(lambda: False, 0.3)
    finally:
        receiver.close()
    assert "shed" not in err
    heard, held = [], {}
    most = 0
    for t, m in receiver.messages:
        key = (m[0] & 0x0F, m[1])
        if m[0] & 0xF0 == NOTE_ON and m[2] > 0:
            held[key] = t
            most = max(most, len(held))
        elif m[0] & 0xF0 == NOTE_OFF or (m[0] & 0xF0 == NOTE_ON and m[2] == 0):
            if key in held:
                heard.append((held.pop(key), t, m[1]))
    assert not held  # every note-on had its note-off
    assert most <= 8, most
    assert max(off - on for on, off, _ in heard) < 5.0
    recorded = canonical([(on, off, pitch) for on, off, pitch, _, _ in notes_in(take)[0]])
    heard = canonical(heard)
    assert len(heard) == len(recorded) > 300
    assert [p for _, _, p in heard] == [p for _, _, p in recorded]
    offset = float(np.median([h[0] - r[0] for h, r in zip(heard, recorded)]))
    onsets = [abs(h[0] - r[0] - offset) for h, r in zip(heard, recorded)]
    lengths = [abs((h[1] - h[0]) - (r[1] - r[0])) for h, r in zip(heard, recorded)]
    # when they sounded: as recorded, but for a note a busy machine's timing thread sent late
    for errors in (onsets, lengths):
        errors.sort()
        assert errors[len(errors) // 2] < 0.002 and errors[int(0.98 * len(errors))] < 0.02, errors[-10:]


def canonical(notes, together: float = 0.003):
    """(on, off, pitch) in onset order, the notes of one chord (onsets within ``together``) by pitch."""
    notes = sorted(notes)
    out, group = [], []
    for note in notes:
        if group and note[0] - group[0][0] >= together:
            out += sorted(group, key=lambda n: n[2])
            group = []
        group.append(note)
    return out + sorted(group, key=lambda n: n[2])
