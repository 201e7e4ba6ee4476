"""Playing along: the musician leads and the instrument's follow voice plays each of their notes a
beat later, held as they held it, with a pitch of its own (instrument/live/along.py). The voice's
side in process, a simulated musician's notes through a real transcriber and a small network; the
whole instrument through JACK is in tests/test_listen.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.harness.musician import REEL, perform
from instrument.live.along import AlongVoice
from instrument.live.composer import Composer
from instrument.live.engine import Engine
from instrument.live.listen import KEY_GIVEN_BEATS
from instrument.live.params import Parameters
from instrument.music.transcribe import Transcriber
from instrument.timing import Scheduler, clock
from tests.engine_helpers import Collector
from tests.helpers import make_model

C_MAJOR = {0, 2, 4, 5, 7, 9, 11}


def follow(bpm: float = 120.0, cohesion: float = 0.6, seed: int = 3, tick_s: float = 0.005, transpose: int = 2):
    """The reel played in D (``transpose``) by a simulated musician, heard by a transcriber told the
    key, followed by an along voice: (the musician's kept notes, the notes it handed over with the
    simulated time of each, its releases, a beat in seconds, the voice)."""
    params = Parameters()
    params.set("listen.cohesion", cohesion, smoothing_ms=0)
    model = make_model(hidden=48, seed=seed)
    composer = Composer(model, params, seed=seed)
    out = Collector()
    engine = Engine(composer, params, [out], Scheduler(realtime=False))
    along = AlongVoice(model, composer, engine, seed=seed)
    base = clock() + 60.0  # the musician's times lie ahead of the real clock: the engine counts nothing late
    played = perform(REEL, bpm, seed=seed, transpose=transpose, start_s=base)
    transcriber = Transcriber("4/4", bpm, played.origin_s, key=(transpose % 12, "maj"), listen_bars=KEY_GIVEN_BEATS / 4)
    handed: list[float] = []  # the simulated time each note was handed over
    events = played.events()
    now = events[0][0]
    end = events[-1][0] + 1.0

    def tick(at: float) -> None:
        transcriber.advance(at)
        if not along.active and transcriber.shift is not None:
            along.begin("4/4", "maj", transcriber.shift, played.origin_s, played.spq, 1, transcriber)
        before = len(out.notes)
        along.follow(transcriber.melody(along.taken), at)
        handed.extend([at] * (len(out.notes) - before))

    for t, kind, pitch, velocity in events:
        while now + tick_s < t:
            now += tick_s
            tick(now)
        now = max(now, t)
        transcriber.note_on(t, pitch, velocity) if kind == "on" else transcriber.note_off(t, pitch)
        tick(now)
    while now < end:
        now += tick_s
        tick(now)
    along.close(now)
    return transcriber.melody(), [(n, at) for (n, _), at in zip(out.notes, handed)], out.releases, played.spq, along, engine


def along_problem(melody, notes, releases, beat_s: float, lookahead: float) -> str | None:
    """Why ``notes`` ((ScheduledNote, when handed over)) are not the musician's ``melody`` a beat
    later, or None: each onset exactly a beat after its musician note's, each handed over at
    least ``lookahead`` before it sounds, each ending a beat after the musician's note ended (its
    release or the next onset), ending before the next begins."""
    if not notes:
        return "nothing was played"
    by_on = {round(n.on + beat_s, 6): i for i, n in enumerate(melody)}
    bad = []
    ends = sorted(at for _, at, _ in releases)
    for k, (note, handed) in enumerate(notes):
        i = by_on.get(round(note.on, 6))
        if i is None:
            bad.append(f"note {k} at {note.on:.4f} is no musician's note a beat later")
            continue
        heard = melody[i]
        end = min([t for t in (heard.off, melody[i + 1].on if i + 1 < len(melody) else None) if t is not None])
        released = next((t for t in ends if note.on < t <= note.off + 1e-9), None)
        sounded_to = min(note.off, released) if released is not None else note.off
        if abs(sounded_to - (end + beat_s)) > 1e-6 and abs(note.off - note.on - 0.02) > 1e-6:
            bad.append(f"note {k} ends {1000 * (sounded_to - end - beat_s):+.1f} ms off the musician's end a beat later")
        if handed > note.on - lookahead + 1e-9:
            bad.append(f"note {k} handed over {1000 * (note.on - handed):.1f} ms before it sounds")
        if k + 1 < len(notes) and sounded_to > notes[k + 1][0].on + 1e-9:
            bad.append(f"note {k} still sounds when the next begins")
    return f"{len(bad)} of {len(notes)}: {bad[:5]}" if bad else None


def test_along_plays_each_musician_note_a_beat_later_held_as_they_held_it():
    melody, notes, releases, spq, along, engine = follow()
    assert along_problem(melody, notes, releases, spq, engine.lookahead) is None
    first_followed = next(i for i, n in enumerate(melody) if abs(n.on + spq - notes[0][0].on) < 1e-6)
    assert first_followed <= 4, "with the key given it comes in within the first bar"
    assert len(notes) == len(melody) - first_followed, "every note from then on is followed"


def test_the_along_checks_can_fail():
    melody, notes, releases, spq, _, engine = follow()
    late = [(replace(n, on=n.on + 0.02, off=n.off + 0.02), at) for n, at in notes]
    assert along_problem(melody, late, releases, spq, engine.lookahead) is not None
    rushed = [(n, n.on - engine.lookahead / 2) for n, _ in notes]
    assert along_problem(melody, rushed, releases, spq, engine.lookahead) is not None


def test_at_full_cohesion_the_along_voice_plays_the_musicians_notes():
    melody, notes, _, spq, *_ = follow(cohesion=1.0)
    by_on = {round(n.on, 6): n.pitch for n in melody}
    pitches = [(by_on[round(n.on - spq, 6)], n.pitch) for n, _ in notes]
    assert all(mine == theirs - 2 for theirs, mine in pitches), pitches  # in the tune's C: transpose brings it to D


@pytest.mark.parametrize("bpm", [90.0, 160.0])
def test_the_along_voice_keeps_to_the_mode_and_varies_the_tune(bpm):
    melody, notes, releases, spq, along, engine = follow(bpm=bpm, cohesion=0.5, seed=5)
    assert along_problem(melody, notes, releases, spq, engine.lookahead) is None
    in_scale = [n.pitch % 12 in C_MAJOR for n, _ in notes]
    assert sum(in_scale) / len(in_scale) >= 0.9
    by_on = {round(n.on, 6): n.pitch - 2 for n in melody}
    same = sum(by_on[round(n.on - spq, 6)] == n.pitch for n, _ in notes)
    assert 0 < same < len(notes), "neither a copy nor another tune"
