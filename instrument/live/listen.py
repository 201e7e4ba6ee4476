"""Playing with a musician: the instrument listens on MIDI in and answers, continues or plays along.

The ``listen`` parameter: ``off``; ``continue`` (the musician plays the opening of a tune, and when
they stop, the instrument goes on with the same tune from that state, in its meter and key, to its
end, then listens for the next); ``answer`` (call and response: each phrase the musician plays is
answered with as many bars, then the instrument listens again; tune after tune); ``along`` (the
musician leads and the instrument follows them a beat behind, ``instrument/live/along.py``; when
``listen`` is set off it takes the tune over from there).

While it listens the instrument is silent and its clock runs: bar lines fall where the tempo map
puts them (the MIDI clock out and a Link session follow it), and the musician plays to that grid.
Their notes (``hear``, from the MIDI input's thread) go to a ``Transcriber``
(``instrument/music/transcribe.py``) on a thread of this module's ("listen"), which polls every
``POLL_S``. The phrase is over when the music has been silent one beat past a bar line, or at
``listen.end`` (a pedal mapped to it); that is decided a little before the beat comes, so the
instrument's first note can fall on it: one beat after the bar line. The phrase's tokens are fed to
the network by the model thread (``Composer.take_played``), the key heard sets ``transpose`` so the
instrument plays in the musician's key, and the tempo map is restarted there. Meanwhile every token
is written into the tune as it is heard (``Composer.write_heard``, on the parked model thread), so the
view, the page and the recording show the tune grow.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections import deque

from instrument.live.along import AlongVoice
from instrument.model import vocab
from instrument.music.keys import parse_key
from instrument.music.notes import MAX_HELD_BARS
from instrument.music.phrasing import QUARTERS_PER_BEAT, ScheduledNote
from instrument.music.transcribe import Transcriber
from instrument.outputs.midi_port import MidiPort
from instrument.timing import clock

log = logging.getLogger(__name__)

POLL_S = 0.005  # how often the listening thread looks at what came
DECIDE_EARLY_S = 0.010  # the phrase's end is decided this much before the engine must know it
KEY_BARS = 4.0  # bars heard before the key is decided and the first tokens written (instrument/music/keys.py)
KEY_GIVEN_BEATS = 1.0  # with the key given, beats heard before the octave is (keys.transposition)
SAY_EVERY_S = 10.0  # what could not be read into tokens is said at most this often
MAX_INBOX = 4096  # notes waiting for the listening thread; past that the oldest are dropped (a flood)
CLICK_AHEAD_S = 0.1  # clicks are handed to the MIDI port this far ahead of their beat
TAKE_OVER_S = 0.05  # after along, the network's first note comes no sooner than this (its steps, the outputs)
ECHO_S = 0.002  # an echoed note sounds this long after the outputs can take it (the timing thread's margin)
ECHO_CEILING_S = 8.0  # an echoed key never let go ends after this
class Listener:
    """The ``listen`` modes, between the MIDI input (``hear``) and the engine."""

    def __init__(self, params, engine, model=None, seed: int | None = None):
        """``model``: the network the along voice plays (a row of its own; None: ``along`` stays off)."""
        self.params, self.engine, self.composer = params, engine, engine.composer
        self._model, self._seed = model, seed
        self.along: AlongVoice | None = None  # made the first time listen is along
        self.mode = params.get("listen")
        self.state = "off"  # off | waiting (for the musician) | hearing | playing (our turn)
        self.turns = 0  # phrases heard and answered or continued
        self.transcriber: Transcriber | None = None
        self.heard: list[str] = []  # the phrase being heard, as written so far
        self.key: tuple[int, str] | None = None  # the tune's key, once heard (or given)
        self.shift: int | None = None  # and its transposition into C
        self._forwarded = 0  # tokens of the phrase already written into the tune
        self._echoing: dict[int, float] = {}  # pitch -> when its echo began (listen.echo)
        self._next_click: float | None = None  # the beat (quarter notes) of the next click (listen.click)
        self._ports = [out for out in engine.outputs if isinstance(out, MidiPort)]
        self.dropped = 0  # notes dropped from a full inbox
        self._inbox: deque[tuple[float, int, int]] = deque()
        self._ends = params.fired("listen.end")
        self._said_at, self._dropped_said = -SAY_EVERY_S, 0
        self._new_tune = True  # the next phrase opens a tune
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        params.listen(self._on_change, "listen")
        if self.mode != "off":
            self._begin()

    # -- the MIDI input's thread ------------------------------------------------------------------
    def hear(self, pitch: int, velocity: int, at: float | None = None) -> bool:
        """A musician's note-on (velocity 0: note-off) that arrived at ``at`` (None: now). True when
        it was taken (listening), so the MIDI input does not also take it as a key that steers the
        network."""
        if self.mode == "off":
            return False
        at = clock() if at is None else at
        if len(self._inbox) >= MAX_INBOX:
            self._inbox.popleft()
            self.dropped += 1
        self._inbox.append((at, int(pitch), int(velocity)))
        if self._echoing or self.params.get("listen.echo"):
            self._echo(int(pitch), int(velocity), at)
        return True

    def _echo(self, pitch: int, velocity: int, at: float) -> None:
        """``listen.echo``: the musician's note through the instrument's outputs, as played (their key,
        not transposed), as soon as every output can sound it; it ends when they let go (a key never
        let go ends after ``ECHO_CEILING_S``, or when listening or the performance stops)."""
        engine, p = self.engine, self.params
        if velocity > 0 and p.get("listen.echo") and 0 <= pitch <= 127:
            on = max(at, clock()) + engine.output_lead + ECHO_S
            placed = ScheduledNote(on, on + ECHO_CEILING_S, pitch, max(1, min(127, velocity)), int(p.get("channel")),
                                   max(1, self.composer.tune_count), 1)
            engine.sound_placed(placed, self.composer.meter)
            self._echoing[pitch] = on
        elif pitch in self._echoing:
            on = self._echoing.pop(pitch)
            engine.release(1, max(at + engine.output_lead + ECHO_S, on), pitch)

    # -- mode changes (a controller's thread) -------------------------------------------------------
    def _on_change(self, change) -> None:
        was, self.mode = self.mode, change.value
        for pitch in list(self._echoing):  # what it echoes ends with the listening it echoed
            self._echo(pitch, 0, clock())
        if was == "off" and self.mode != "off":
            self._begin()
        elif self.mode == "off":  # the listening thread drops the phrase heard so far
            self.composer.turns = False
            self.composer.waiting = False
            self.state = "off"
            if was == "along":
                self._take_over()
            elif not self.engine.rolling.is_set():
                self.engine.resume()  # the instrument plays on by itself

    def _take_over(self) -> None:
        """After ``along`` the instrument goes on with the tune it heard (a tune going on), at the
        first bar line of the clock that leaves it time, as far into that bar as the tune stands."""
        engine, composer = self.engine, self.composer

        def take() -> None:  # on the model thread, after the tokens heard so far are written
            tune = composer.tune
            if tune is None or tune.ended:
                engine.phrasing.tempo.restart(composer.head, clock() + engine.lookahead)
                return  # nothing heard: the network begins a tune of its own, now
            tempo = engine.phrasing.tempo
            earliest = tempo.beat_at(clock() + engine.lookahead + TAKE_OVER_S) - composer.bar_position
            composer.take_over(tempo.beat_at(self._bar_line_from(tempo.time_at(earliest))))

        if not engine.rolling.is_set():
            engine.resume(take)

    def _begin(self) -> None:
        if self.mode == "along" and self.along is None:
            if self._model is None:
                log.warning("listen along needs the network; this performance has none to give it, so listen stays off")
                self.mode = "off"
                return
            self.along = AlongVoice(self._model, self.composer, self.engine, self._seed)
        self.composer.turns = True
        self.state = "waiting"
        self._new_tune = True
        if self.engine.start_time:  # playing: our music ends now, the musician begins
            self.composer.waiting = True
            self.engine.halt(drop_tune=True)
            self.engine.panic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="listen", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.params.unlisten(self._on_change)
        if self._thread is not None:
            self._thread.join(1.0)

    # -- the listening thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._poll(clock())
            except Exception:  # what a musician plays never stops the music
                log.exception("listening failed; the phrase is dropped")
                self.transcriber, self.heard = None, []
                self.state = "waiting" if self.mode != "off" else "off"

    def _grid(self) -> tuple[float, float, str]:
        """(seconds per quarter, bar length in quarters, meter) of the grid the musician plays to."""
        meter = self._meter()
        return self.engine.phrasing.tempo.spq, vocab.METER_EIGHTHS[meter] / 2, meter

    def _meter(self) -> str:
        tune = self.composer.tune
        if not self._new_tune and tune is not None and tune.meter:
            return tune.meter
        chosen = self.params.get("meter.next")
        return chosen if chosen != "auto" else "4/4"

    def _bar_line_from(self, t: float) -> float:
        """The first bar line of the grid at or after ``t`` (a time): its time."""
        tempo = self.engine.phrasing.tempo
        spq, bar, _ = self._grid()
        beat = tempo.beat_at(t)
        # the clock's bars count from the performance's beat 0, where the MIDI clock out starts
        # (a DAW counts its bars from there)
        return tempo.time_at(math.ceil(beat / bar - 1e-6) * bar)

    def _poll(self, now: float) -> None:
        if self.mode == "off":
            self._inbox.clear()
            if self.along is not None and self.along.active:
                self.along.close(now)  # what it sounds ends with the musician's notes
            self.transcriber, self.heard = None, []
            return
        engine = self.engine
        self._click(now)
        if self.state == "playing" and self.composer.waiting and not engine.rolling.is_set():
            self.state = "waiting"  # our turn is over: the musician's
            tune = self.composer.tune
            self._new_tune = tune is None or tune.ended
        while self._inbox:
            t, pitch, velocity = self._inbox.popleft()
            if self.transcriber is None:
                if velocity == 0:
                    continue
                self._open(t)
            self.heard += (self.transcriber.note_on(t, pitch, velocity) if velocity
                           else self.transcriber.note_off(t, pitch))
        if self.transcriber is None:
            return
        self.heard += self.transcriber.advance(now)
        self._forward()
        if self.mode == "along":
            self._follow(now)
        if self.state == "hearing" and engine.rolling.is_set():
            return  # our answer is still sounding: the call is heard meanwhile, answered after
        end = self._phrase_end(now)
        if end is not None:
            self._hand_over(end)

    def _click(self, now: float) -> None:
        """``listen.click``: a click on each beat of the grid while the musician plays or is awaited
        (in along, while they lead), handed to the MIDI ports ``CLICK_AHEAD_S`` ahead."""
        if (not self._ports or not self.engine.start_time or self.state not in ("waiting", "hearing")
                or not self.params.get("listen.click")):  # (before the start the clock is not set)
            self._next_click = None
            return
        tempo = self.engine.phrasing.tempo
        _, bar, meter = self._grid()
        beat = QUARTERS_PER_BEAT[meter]
        if self._next_click is None:
            self._next_click = math.ceil(tempo.beat_at(now) / beat - 1e-6) * beat
        while (at := tempo.time_at(self._next_click)) < now + CLICK_AHEAD_S:
            if at >= now:
                downbeat = abs(math.remainder(self._next_click, bar)) < 1e-6
                for port in self._ports:
                    port.click(at, downbeat)
            self._next_click += beat

    def _open(self, t: float) -> None:
        """A musician's first note: a phrase begins. Its grid's origin is the first bar line no more
        than a beat before the note (a note nearer the next bar line is a pickup into it)."""
        spq, bar, meter = self._grid()
        beat_s = spq * QUARTERS_PER_BEAT[meter]
        origin = self._bar_line_from(t - beat_s)
        key = (self.key if not self._new_tune else None) or _given_key(self.params)
        shift = self.shift if key is not None and key == self.key and not self._new_tune else None
        # a tune going on has its key and octave: tokens from the first note; a key given leaves the
        # octave to hear: a beat
        given = KEY_GIVEN_BEATS * beat_s / (bar * spq)
        self.transcriber = Transcriber(meter, 60.0 / beat_s, origin, key=key, listen_bars=given if key else KEY_BARS,
                                       shift=shift)
        self.heard, self._forwarded = [], 0
        if self.state == "waiting":
            self.state = "hearing"

    def _phrase_end(self, now: float) -> float | None:
        """The bar line the phrase ended at, once silence has lasted to a beat past it (decided
        ``DECIDE_EARLY_S`` plus the engine's lookahead before that beat), or at ``listen.end``."""
        heard = self.transcriber.heard
        if not heard:
            return None
        spq, bar, meter = self._grid()
        beat_s = spq * QUARTERS_PER_BEAT[meter]
        ended = self.params.fired("listen.end")
        if ended != self._ends:
            self._ends = ended
            return self._bar_line_from(now - beat_s + self.engine.lookahead + DECIDE_EARLY_S)
        held = MAX_HELD_BARS * bar * spq  # a note never released ends as the note rules end one (§2)
        if any(n.off is None and now - n.on < held for n in heard[-8:]):
            return None  # a note still sounds
        last = max(n.off if n.off is not None else n.on + held for n in heard)
        # a note released within a sixteenth past a bar line ends at it (a player lets go a little late)
        bar_line = self._bar_line_from(last - max(0.05, spq / 4))
        if now >= bar_line + beat_s - self.engine.lookahead - DECIDE_EARLY_S:
            return bar_line
        return None

    def _forward(self) -> None:
        """The phrase's new tokens into the tune, while the model thread is parked (the musician's
        turn); an answer still sounding gets them at the hand-over."""
        if self.engine.rolling.is_set() or self._forwarded >= len(self.heard):
            return
        tokens = self._unwritten()
        if tokens:
            self.engine.call_soon(functools.partial(self.composer.write_heard, tokens))

    def _unwritten(self) -> list[str]:
        """The phrase's tokens not yet written into the tune (a header only where it opens one)."""
        tokens = [t for t in self.heard[self._forwarded:] if self._new_tune or not t.startswith(("M:", "K:"))]
        self._forwarded = len(self.heard)
        return tokens

    def _follow(self, now: float) -> None:
        """``along``: the follow voice comes in once the key is fixed, and hears each note."""
        transcriber, along = self.transcriber, self.along
        if along is None:
            return
        if along.phrase is not transcriber and transcriber.shift is not None:
            spq, _, meter = self._grid()
            self._keep_key(transcriber)
            tune = self.composer.tune_count + (1 if self._new_tune or self.composer.tune is None else 0)
            along.begin(meter, transcriber.key[1], transcriber.shift, transcriber.origin, spq, tune, transcriber)
        if along.phrase is transcriber and along.active:
            along.follow(transcriber.melody(along.taken), now)

    def _keep_key(self, transcriber: Transcriber) -> None:
        """A new tune's key, once heard: kept for its next phrases, and the instrument plays in it."""
        if not self._new_tune or transcriber.key is None or transcriber.shift is None:
            return
        self.key, self.shift = transcriber.key, int(transcriber.shift)
        self.params.set("transpose", -self.shift, source="listen", smoothing_ms=0)

    def _hand_over(self, bar_line: float) -> None:
        """The phrase is over at ``bar_line``: its tokens to the model thread, our turn begins one
        beat after the bar line (along: the follower ends with the musician, and listens on)."""
        transcriber = self.transcriber
        self.heard += transcriber.finish(bar_line)
        tokens = self._unwritten()
        spq, bar, meter = self._grid()
        beat_s = spq * QUARTERS_PER_BEAT[meter]
        bars = max(1, round((bar_line - transcriber.origin) / (bar * spq)))  # a pickup is not a bar
        self._keep_key(transcriber)
        if self.mode == "along":
            if self.along is not None and self.along.phrase is transcriber:
                self.along.close(bar_line)
            self.engine.call_soon(functools.partial(self.composer.write_heard, tokens))
            log.info("followed %d bar%s", bars, "" if bars == 1 else "s")
            self.transcriber, self.heard = None, []
            self.turns += 1
            self._new_tune = False
            self.state = "waiting"
            return
        answer = bars if self.mode == "answer" else None
        start = bar_line + beat_s
        self._say_unread(transcriber)
        log.info("heard %d bar%s (%s): %s", bars, "" if bars == 1 else "s", self.mode,
                 " ".join(t for t in self.heard if not t.startswith(("M:", "K:")))[:200])

        def take() -> None:  # on the model thread: the tune goes on one beat after the bar line
            self.composer.take_played(tokens, answer, at=self.engine.phrasing.tempo.beat_at(start))

        self.transcriber, self.heard = None, []
        self.turns += 1
        self._new_tune = False
        self.state = "playing"
        self.engine.resume(take)

    def _say_unread(self, transcriber: Transcriber) -> None:
        """Notes that could not be written as the tune's (ornaments, a chord's lower notes, notes
        too close together, a flood): said in one line, at most every ``SAY_EVERY_S``."""
        written = sum(1 for t in transcriber.tokens if t[-1:].isalpha() and not t.startswith(("M:", "K:")))
        unread = len(transcriber.heard) - written + self.dropped - self._dropped_said
        now = clock()
        if unread > 0 and now - self._said_at >= SAY_EVERY_S:
            self._said_at, self._dropped_said = now, self.dropped
            log.warning("of the musician's last phrase, %d of %d notes were not written into the tune (ornaments, a "
                        "chord's lower notes, notes too close together or too many at once)",
                        unread, len(transcriber.heard) + self.dropped)

    def status(self) -> dict:
        """What /state, the view and the page show: the mode, whose turn it is, what is heard."""
        if self.mode == "off":
            return {"mode": "off"}
        heard = " ".join(t for t in self.heard if not t.startswith(("M:", "K:")))
        return {"mode": self.mode, "state": self.state, "turns": self.turns, "heard": heard[-300:],
                "key": list(self.key) if self.key else None, "dropped": self.dropped}

    def line(self) -> str | None:
        """The listening in one line for the views (None when off)."""
        status = self.status()
        if status["mode"] == "off":
            return None
        who = {"waiting": "waiting for the musician",
               "hearing": "the musician plays" + (", the instrument a beat behind" if self.mode == "along" else ""),
               "playing": "the instrument plays"}.get(status["state"], status["state"])
        heard = f": {status['heard'][-80:]}" if status["heard"] else ""
        return f"listen {status['mode']}, {who}{heard}"


def _given_key(params) -> tuple[int, str] | None:
    try:
        return parse_key(str(params.get("listen.key")))
    except ValueError:
        return None
