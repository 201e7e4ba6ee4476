"""Playing in turns with a musician: a played phrase becomes the tune's opening (``continue``) or a
call that is answered with as many bars (``answer``). The composer's side with a small model in
process; the whole instrument through a real JACK server, a musician's MIDI port and a listener."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time

import pytest

from bench.harness.midi import Receiver, heard_notes
from bench.harness.wait import wait_for
from instrument.live.composer import Composer, ComposedNote
from instrument.live.params import Parameters
from instrument.midi.messages import NOTE_ON, START
from instrument.model import vocab
from instrument.music.keys import parse_key
from instrument.music.tunes import Tune, abc_body
from tests.helpers import ROOT, make_model
from bench.harness.musician import REEL, MidiMusician, perform
from instrument.timing import clock
from tests.player import STARTED

TUNE = REEL
OPENING = TUNE.body[:38]  # the pickup and the first four bars
SCALE = {"maj": (0, 2, 4, 5, 7, 9, 11)}


def turns_composer(seed: int = 3) -> tuple[Composer, Parameters]:
    params = Parameters()
    params.set("meter.next", "6/8", smoothing_ms=0)  # what the musician plays rules, not this
    composer = Composer(make_model(hidden=48, seed=seed), params, seed=seed)
    composer.turns = True
    return composer, params


def test_in_turns_the_composer_waits_for_the_musician_to_open_a_tune():
    composer, _ = turns_composer()
    assert composer.next_notes() == [] and composer.waiting and composer.tune is None


def test_a_played_opening_becomes_the_tune_which_the_network_goes_on_with():
    composer, _ = turns_composer()
    composer.take_played(["M:4/4", "K:Cdor", *OPENING], at=40.0)
    tune = composer.tune
    assert (tune.meter, tune.mode) == ("4/4", "dor") and tune.body[: len(OPENING)] == OPENING
    assert tune.heard == [(0, len(OPENING))] and composer.head == pytest.approx(40.0)
    notes = []
    while len(notes) < 8 and not tune.ended:
        notes += [n for n in composer.next_notes() if isinstance(n, ComposedNote)]
    assert notes and notes[0].beat >= 40.0 - 1e-9  # ours begin where the musician stopped, not earlier
    assert all(n.meter == "4/4" for n in notes)
    assert len(tune.body) > len(OPENING)  # the network wrote on after the heard tokens


def test_an_answer_is_as_many_bars_as_the_call_then_it_is_the_musicians_turn():
    composer, _ = turns_composer(seed=5)
    composer.take_played(["M:4/4", "K:Cmaj", *OPENING[:10]], bars=2, at=8.0)
    heard = len(composer.tune.body)
    for _ in range(400):
        if composer.waiting or composer.tune.ended:
            break
        composer.next_notes()
    answer = composer.tune.body[heard:]
    bars = [t for t in answer if vocab.TOKEN_CLASS[vocab.INDEX[t]] is vocab.TokenClass.BAR]
    assert composer.tune.ended or (composer.waiting and len(bars) == 2), answer
    assert composer.next_notes() == []  # nothing more until the next call
    composer.take_played(OPENING[1:10], bars=2, at=30.0)  # the next call goes on in the same tune
    assert not composer.waiting and composer.tune.heard[-1] == (len(composer.tune.body) - 9, len(composer.tune.body))


def test_a_performer_names_the_musicians_key_or_leaves_it_to_the_ears():
    assert parse_key("auto") is None and parse_key("D dor") == (2, "dor") and parse_key("bb mix") == (10, "mix")
    assert parse_key("G") == (7, "maj")
    with pytest.raises(ValueError, match="tonic and a mode"):
        parse_key("H lydian")


# -- the whole instrument ----------------------------------------------------------------------------
@contextlib.contextmanager
def _listening(mode: str, musician: str, *extra: str):
    """``play --listen mode`` in 4/4 with the musician ``musician`` (a JACK MIDI port of the test's)
    on its MIDI in and a listener on its MIDI out: yields (musician, listener, process, the time its
    MIDI clock started: bar 0 of the grid the musician plays to); all closed after."""
    player, receiver = MidiMusician(musician), Receiver(f"{musician}-ear", "in")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "play", "--quiet", "--no-web", "--no-myo", "--no-osc",
                             "--midi-in", musician, "--midi-api", "jack", "--midi-out", "virtual", "--send-clock",
                             "--no-audio", "--listen", mode, "--meter", "4/4", "--seconds", "40", *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    STARTED.append(proc)
    try:
        receiver.listen_to_play(proc)
        wait_for(lambda: receiver.of(START), 30, "the instrument's clock to start")
        yield player, receiver, proc, receiver.of(START)[0][0]
    finally:
        if proc.poll() is None:
            proc.kill()
        time.sleep(0.2)  # the closing note-offs reach the listener
        receiver.close()
        player.close()


def _ended(proc: subprocess.Popen) -> str:
    """SIGTERM, as a performer's: it ends cleanly; what it said."""
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    return err


def _play_with(mode: str, tmp_path, phrases: list[tuple[int, int]], bpm: float = 120.0, transpose: int = 2,
               extra: tuple[str, ...] = ()):
    """``play --listen mode`` with a musician on MIDI in who plays, for each (first bar, bars) of
    ``phrases``, that many bars of the tune starting at that bar of the instrument's clock (its MIDI
    clock's Start is bar 0). Returns the instrument's note-ons (time, pitch) but its clicks (channel
    10: time, pitch), its clock's start, the bars' length, the phrases' (start, end) times, the
    take's ABC and what it said."""
    take = tmp_path / "take.mid"
    with _listening(mode, "musician", "--tempo", str(bpm), "--seed", "2", "--record", str(take),
                    *extra) as (musician, receiver, proc, start):
        bar_s = 4 * 60.0 / bpm
        spans = []
        for first_bar, bars in phrases:
            first = first_bar == phrases[0][0]  # the first phrase with its pickup, the others from a bar line
            part = Tune("4/4", "maj", TUNE.body[: 2 + 9 * bars] if first else TUNE.body[2 + 9 * bars: 2 + 18 * bars])
            played = perform(part, bpm, seed=first_bar, transpose=transpose, start_s=0.0)
            shift = start + first_bar * bar_s - played.origin_s
            events = [(t + shift, kind, pitch, velocity) for t, kind, pitch, velocity in played.events()]
            musician.play(events)
            spans.append((events[0][0], start + (first_bar + bars) * bar_s))
        time.sleep(4 * bar_s)  # the instrument's turn, heard
        err = _ended(proc)
    ons = [(t, m[1]) for t, m in receiver.of(NOTE_ON) if m[2] > 0 and m[0] & 0x0F != 9]
    clicks = [(t, m[1]) for t, m in receiver.of(NOTE_ON) if m[2] > 0 and m[0] & 0x0F == 9]
    assert heard_notes(receiver.messages)[2] == [], "notes left sounding"
    return ons, clicks, start, bar_s, spans, take.with_suffix(".abc").read_text(), err


@pytest.mark.realtime
def test_continue_goes_on_with_the_musicians_tune_after_they_stop(tmp_path):
    ons, _, start, bar_s, spans, abc, err = _play_with("continue", tmp_path, [(2, 4)])
    (begun, end), = spans
    beat_s = bar_s / 4
    assert not [t for t, _ in ons if t < end], "the instrument played while the musician did"
    assert ons, err[-2000:]
    first = ons[0][0] - end
    assert 0 <= first <= beat_s + beat_s / 4 + 0.005, f"first note {first * 1000:.0f} ms after the phrase's end; {abc}; {err[-3000:]}"
    assert "M:4/4" in abc and "K:C" in abc and '"^musician"' in abc and '"^instrument"' in abc
    in_scale = [(p - 2) % 12 in SCALE["maj"] for _, p in ons]  # the musician played it in D
    assert sum(in_scale) / len(in_scale) >= 0.9, [p for _, p in ons]
    heard = abc.split('"^musician"', 1)[1].split('"^instrument"', 1)[0].strip()
    assert heard == abc_body("4/4", "maj", OPENING), abc  # through JACK, note for note and bar for bar


@pytest.mark.realtime
def test_answer_is_as_long_as_the_call_and_silent_while_the_musician_plays(tmp_path):
    ons, clicks, start, bar_s, spans, abc, err = _play_with("answer", tmp_path, [(2, 2), (8, 2)],
                                                           extra=("--set", "listen.click=true"))
    beat_s = bar_s / 4
    # the click: on every beat of the clock while the musician is awaited or plays, the bar's first
    # higher, none while the instrument answers
    beats = [(t - start) / beat_s for t, _ in clicks]
    assert clicks and all(abs(b - round(b)) * beat_s <= 0.003 for b in beats), beats[:12]
    assert all((p == 76) == (round(b) % 4 == 0) for b, (_, p) in zip(beats, clicks)), clicks[:12]
    for begun, end in spans:
        heard = [t for t, _ in clicks if begun - beat_s / 2 <= t < end]
        assert len(heard) >= round((end - begun) / beat_s) - 1, (len(heard), begun - start, end - start,
                                                                 [round(t - start, 3) for t, _ in clicks][:40])
    first_answer = spans[0][1] + beat_s
    assert not [t for t, _ in clicks if first_answer + beat_s / 2 <= t < first_answer + bar_s], "a click during the answer"
    for (begun, end) in spans:
        assert not [t for t, _ in ons if begun <= t < end], "the instrument played during a call"
    for (begun, end), after in zip(spans, [spans[1][0], None]):
        answer = [t for t, _ in ons if end <= t and (after is None or t < after)]
        assert answer, (spans, ons[:10], err[-1500:])
        assert answer[0] - end <= beat_s + beat_s / 4 + 0.005
        assert answer[-1] < end + beat_s + 2 * bar_s, "the answer ran past the call's two bars"


@pytest.mark.realtime
def test_a_musician_playing_nonsense_never_stops_the_music_or_leaves_a_note_sounding(tmp_path):
    """Random notes at 200 a second, chords, the sustain pedal and pitch bend for three seconds,
    echoed: the instrument hears a phrase, says what it could not read, plays on, and ends with
    nothing sounding (the keys never let go were echoed too)."""
    with _listening("continue", "nonsense", "--tempo", "120", "--seed", "4",
                    "--set", "listen.echo=true") as (musician, receiver, proc, start):
        rng = random.Random(7)
        t0 = start + 4.0
        events = []
        for i in range(600):  # 200 a second for three seconds, some of them chords, some never released
            t = t0 + i / 200.0
            for pitch in rng.sample(range(0, 128), rng.choice((1, 1, 3))):
                events.append((t, "on", pitch, rng.randint(1, 127)))
                if rng.random() < 0.9:
                    events.append((t + rng.uniform(0.001, 0.3), "off", pitch, 0))
        musician.play(sorted(events))
        musician.control(64, 127)  # the sustain pedal, and a bend, which a tune has no token for
        musician.bend(12000)
        echoed = len(receiver.of(NOTE_ON))
        heard_from = clock() + 0.5  # the echoes are over by then
        wait_for(lambda: [t for t, m in receiver.of(NOTE_ON) if m[2] > 0 and t > heard_from], 20,
                 "the instrument to play after the nonsense")
        err = _ended(proc)
    assert echoed >= 500, "the musician's notes were echoed"
    assert err.count("were not written into the tune") == 1, err[-2000:]
    assert "Traceback" not in err
    assert heard_notes(receiver.messages)[2] == [], "notes left sounding"


@pytest.mark.realtime
def test_along_follows_the_musician_a_beat_behind_in_their_bars(tmp_path):
    """The musician plays the whole reel in D with the key given; the instrument comes in within
    the first bars and plays a note a beat after each of theirs, in D, and stops a beat after them."""
    take = tmp_path / "take.mid"
    bpm, beat_s = 120.0, 0.5
    with _listening("along", "leader", "--tempo", str(bpm), "--seed", "2", "--set", "listen.key=D",
                    "--record", str(take)) as (musician, receiver, proc, start):
        played = perform(TUNE, bpm, seed=1, transpose=2, start_s=0.0)
        shift = start + 2 * 4 * beat_s - played.origin_s  # bar 2 of the instrument's clock
        musician.play([(t + shift, kind, pitch, velocity) for t, kind, pitch, velocity in played.events()])
        time.sleep(3 * beat_s)
        err = _ended(proc)
    theirs = [t for t, kind, _ in musician.sent if kind == "on"]
    ours = [(t, m[1]) for t, m in receiver.of(NOTE_ON) if m[2] > 0]
    assert len(ours) >= 0.8 * len([n for n in played.notes if not n.grace]), (len(ours), err[-2000:])
    # each of ours a beat after one of theirs: from their key to our note-on through two JACK MIDI hops
    # (theirs to the instrument, ours to the listener), a few milliseconds, never early
    lags = sorted(min((t - s - beat_s for s in theirs), key=abs) for t, _ in ours)
    p50, first, worst = lags[len(lags) // 2], lags[0], lags[-1]
    assert -0.001 <= first and p50 <= 0.003 and worst <= 0.015, \
        f"a beat after theirs: p50 {p50 * 1e3:+.2f} ms, from {first * 1e3:+.2f} to {worst * 1e3:+.2f} ms"
    assert ours[0][0] - theirs[0] <= 2 * 4 * beat_s + beat_s, "with the key given it comes in by the second bar"
    in_scale = [(p - 2) % 12 in SCALE["maj"] for _, p in ours]
    assert sum(in_scale) / len(in_scale) >= 0.9, [p for _, p in ours]
    last_off = max(t for t, kind, _ in musician.sent if kind == "off")
    assert ours[-1][0] <= last_off + beat_s, "it stopped with the musician"
    assert heard_notes(receiver.messages)[2] == [], "notes left sounding"
    abc = take.with_suffix(".abc").read_text()
    heard = abc.split('"^musician"', 1)[1].split("\n\n", 1)[0].strip()
    # the reel as heard through JACK (its last bar, short by the pickup, ends the music without a bar line)
    assert "K:Cmaj" in abc and heard.rstrip(" |") == abc_body("4/4", "maj", list(TUNE.body)).rstrip(" |"), abc


def test_the_views_say_whose_turn_it_is_and_what_was_heard():
    from instrument.live.engine import Engine
    from instrument.live.listen import Listener
    from instrument.timing import Scheduler

    composer, params = turns_composer()
    engine = Engine(composer, params, [], Scheduler(realtime=False))
    listener = Listener(params, engine)
    assert listener.line() is None and listener.status() == {"mode": "off"}
    params.set("listen", "answer")
    try:
        assert listener.status()["state"] == "waiting" and composer.turns
        assert listener.line() == "listen answer, waiting for the musician"
        listener.heard = ["M:4/4", "K:Cmaj", "G", "|", "c", "2"]
        listener.state = "hearing"
        assert listener.line() == "listen answer, the musician plays: G | c 2"
    finally:
        listener.close()


def _listener_on(collector_params: dict):
    from instrument.live.engine import Engine
    from instrument.live.listen import Listener
    from instrument.timing import Scheduler
    from tests.engine_helpers import Collector

    composer, params = turns_composer()
    for name, value in collector_params.items():
        params.set(name, value, smoothing_ms=0)
    out = Collector()
    engine = Engine(composer, params, [out], Scheduler(realtime=False))
    return Listener(params, engine), params, out


def test_an_echo_sounds_the_musicians_notes_as_played_and_ends_each_when_they_let_go():
    listener, params, out = _listener_on({"listen.echo": True, "channel": 3})
    params.set("listen", "continue")
    try:
        t = clock()
        assert listener.hear(62, 90, at=t) and listener.hear(66, 80, at=t + 0.001)  # a chord: both sound
        assert listener.hear(62, 0, at=t + 0.3)
        (first, _), (second, _) = out.notes
        assert (first.pitch, first.velocity, first.channel, second.pitch) == (62, 90, 3, 66)  # their key: not transposed
        assert t <= first.on <= t + 0.01 and first.off - first.on >= 1.0  # at once; held until they let go
        assert [(r[0], r[3]) for r in out.releases] == [(1, 62)] and out.releases[0][1] >= t + 0.3
        params.set("listen", "off")  # what still sounds ends with the listening
        assert [r[3] for r in out.releases] == [62, 66]
        assert not listener.hear(64, 90)  # not listening: no echo, the key steers the network as before
        assert len(out.notes) == 2
    finally:
        listener.close()


def test_without_echo_the_musicians_notes_never_reach_the_outputs():
    listener, params, out = _listener_on({})
    params.set("listen", "answer")
    try:
        assert listener.hear(62, 90) and listener.hear(62, 0)
        assert out.notes == [] and out.releases == []
    finally:
        listener.close()


def test_a_band_hears_the_musicians_phrase_and_every_voice_plays_the_instruments_turn():
    from controllers.patch import find_ensemble
    from instrument.cli.options import ensemble_params
    from instrument.live.params import INSTRUMENT_PARAMS

    ensemble = find_ensemble("trio")
    params = ensemble_params(INSTRUMENT_PARAMS, ensemble)
    composer = Composer(make_model(hidden=48, seed=3), params, seed=3, ensemble=ensemble)
    composer.turns = True
    composer.write_heard(["M:4/4", "K:Cmaj", *OPENING[:20]])  # token by token as it is heard ...
    composer.take_played(OPENING[20:], at=40.0)  # ... and the rest at the phrase's end
    tune = composer.tune
    assert tune.body == OPENING and tune.heard == [(0, len(OPENING))]
    assert len(tune.bodies[2]) >= len(OPENING) - 1, "the follower played its version of what was heard"
    notes = []
    while len({n.voice for n in notes}) < 3 and not tune.ended and len(notes) < 200:
        notes += [n for n in composer.next_notes() if isinstance(n, ComposedNote)]
    assert {n.voice for n in notes} == {1, 2, 3}, "lead, follower and chords play the instrument's turn"
    assert min(n.beat for n in notes) >= 40.0 - 1e-9, "nothing of any voice in the musician's bars"


def test_after_along_the_instrument_takes_the_tune_over_with_its_bars_on_the_clocks():
    composer, _ = turns_composer()
    composer.write_heard(["M:4/4", "K:Cmaj", *OPENING[:15]])  # the pickup, a bar, then "d 2 f d"
    into = composer.bar_position
    assert into == pytest.approx(1.5)  # "d 2 f" certain: a beat and a half into bar 2 (the last d goes on)
    composer.take_over(80.0)
    notes = []
    while not notes and not composer.tune.ended:
        notes = [n for n in composer.next_notes() if isinstance(n, ComposedNote)]
    first = notes[0]
    assert first.beat == pytest.approx(80.0 + into) and first.beat - first.bar_offset == pytest.approx(80.0)


def test_along_then_off_the_instrument_takes_the_tune_over_on_a_bar_line_of_its_clock():
    """In process, in real time: a musician leads two bars at 240 BPM with the key given, the along
    voice follows; then listen goes off and the network (a small untrained one) goes on with the
    tune it heard, its next bar on one of the clock's bar lines, in the musician's key."""
    from instrument.live.engine import Engine
    from instrument.live.listen import Listener
    from instrument.timing import Scheduler
    from tests.engine_helpers import Collector

    params = Parameters()
    for name, value in {"tempo": 240.0, "meter.next": "4/4", "listen.key": "D", "listen": "along"}.items():
        params.set(name, value, smoothing_ms=0)
    model = make_model(hidden=48, seed=3)
    composer = Composer(model, params, seed=3)
    out = Collector()
    engine = Engine(composer, params, [out], Scheduler(realtime=False))
    listener = Listener(params, engine, model, seed=3)
    engine.start()
    try:
        tempo = engine.phrasing.tempo
        played = perform(Tune("4/4", "maj", TUNE.body[:20]), 240.0, seed=1, transpose=2, start_s=0.0)
        shift = tempo.time_at(8.0) - played.origin_s  # the pickup into bar 2 of the clock
        for t, kind, pitch, velocity in played.events():
            time.sleep(max(0.0, t + shift - clock()))  # the musician's timing: the test's stimulus
            listener.hear(pitch, velocity if kind == "on" else 0, at=t + shift)
        wait_for(lambda: listener.along.played >= 8, 5, "the along voice to follow")
        followed = len(out.notes)
        params.set("listen", "off")

        def taken() -> list:  # the network's notes since (an along note carries no token of the tune)
            return [note for count, note, _ in list(engine.placed) if count >= followed and note.token >= 0]
        wait_for(lambda: len(taken()) >= 4, 10, "the network to take the tune over")
    finally:
        listener.close()
        engine.stop()
    taken = taken()
    assert len(taken) >= 4 and all(n.voice == 1 for n in taken)
    for note in taken[:8]:  # each bar of the tune on a bar line of the clock (4/4: every 4 beats from 0)
        assert (note.beat - note.bar_offset) % 4 == pytest.approx(0.0, abs=1e-6), (note.beat, note.bar_offset)
    assert composer.tune.heard[0][0] == 0, "the tune begins with the musician's bars"
    assert int(params.get("transpose")) % 12 == 2, "it sounds in the musician's D"


def test_the_instruments_turn_begins_with_a_note_however_the_network_is_pushed_toward_rests():
    firsts, later = [], []
    for seed in range(12):
        composer, params = turns_composer(seed=seed)
        params.set("bias.rests", 10.0, smoothing_ms=0)  # rests all but certain
        composer.take_played(["M:4/4", "K:Cmaj", *OPENING[:20]], bars=2, at=8.0)
        start = len(composer.tune.body)
        for _ in range(40):
            composer.next_notes()
            if composer.waiting or composer.tune.ended or len(composer.tune.body) > start + 6:
                break
        firsts.append(composer.tune.body[start])
        later += composer.tune.body[start + 1:]
    assert "z" not in firsts and vocab.END not in firsts, firsts
    assert "z" in later, "the bias does push toward rests after the first note"
