"""Playing along: under a musician who leads, the instrument plays the follow role a beat behind.

A second player who does not know a tune follows the one who does a moment behind: in their
rhythm, with notes of their own. Here the musician is the lead and the instrument its follower
(``instrument.live.follow``, the ensemble's follow role): each note the musician plays, as the
transcriber keeps it (ornaments and a chord's lower notes dropped, ``Transcriber.melody``), is
written the moment it is heard as the tokens a tune would use (its place to the nearest
sixteenth, its pitch in the tune's C, its length once the next note comes) and fed to a row of
the network of its own. Where the musician plays a pitch the row draws its version, under the
follow rule (cohesion toward the musician's pitch, the mode's scale, staying near) and the
performer's own steering of the network (temperature, stimulation, ablation, scale lock); their
rhythm tokens and bar lines it takes as played, so its state follows the musician's tune.

Its note sounds ``LAG_BEATS`` (one beat of the meter) after the musician's, held as they held
theirs: the follower keeps the musician's timing and touch rather than the grid's, so a triplet or
a lilt is followed as played, and its bar lines lie a beat after theirs. A note whose end is not
heard yet when it must start is started with a ceiling and ended by a release on the voice when
the musician lets go (or plays the next note), before the next note is handed over; so a held
note is followed too, and nothing is left sounding.

It comes in once the key is fixed (the transcriber's: at the tune's first note when it is going on,
after a bar with ``listen.key`` given, after four otherwise): a second player listens to a new
tune's opening first. What came before is fed to the row all the same, and what is still ahead of
its time is played. It runs on the listening thread while the model thread is parked (the
musician leads; nothing else is composed), and hands its notes to the engine (``Engine.sound``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fractions import Fraction

from instrument.live.composer import Composer
from instrument.live.follow import Follower
from instrument.model import vocab
from instrument.model.controls import Controls
from instrument.model.network import FolkRNN
from instrument.model.stepper import Stepper
from instrument.model.vocab import TokenClass
from instrument.music.notes import MAX_HELD_BARS
from instrument.music.phrasing import QUARTERS_PER_BEAT, ScheduledNote, velocity
from instrument.music.spelling import LENGTHS, length_tokens, spell_near
from instrument.music.transcribe import CLUSTER_S, HELD_FULL, ORNAMENT_S, HeardNote

log = logging.getLogger(__name__)

LAG_BEATS = 1.0  # the follower plays this many of the meter's beats after the musician
MARGIN_S = 0.010  # a note is handed over this long before the engine's lookahead (two of the listener's polls)
_SIXTEENTH = Fraction(1, 4)  # quarter notes
GROUPED_S = CLUSTER_S + ORNAMENT_S  # every onset this long ago is in the melody (or was an ornament)
VOICE = 1  # the instrument's own line: the musician's is not played (unless echoed)


@dataclass
class _Follow:
    """The follower's version of one musician note."""

    heard: HeardNote
    pitch: int  # its pitch, in the tune's C
    pos: Fraction  # quarter notes from the grid's origin, to the nearest sixteenth
    next_on: float | None = None  # when the musician's next note began
    open: bool = False  # handed to the engine with a ceiling, its end not yet known

    def end(self, settled: float) -> float | None:
        """When the musician's note ended: the next note's onset, or its release once every onset
        before ``settled`` is known (a next note struck before the release makes it legato)."""
        off = self.heard.off
        if self.next_on is not None:
            return self.next_on if off is None else min(off, self.next_on)
        return off if off is not None and off <= settled else None


class AlongVoice:
    """The instrument's follow voice under a musician (see the module docstring)."""

    def __init__(self, model: FolkRNN, composer: Composer, engine, seed: int | None = None) -> None:
        self.composer, self.engine, self.params = composer, engine, composer.params
        self._stepper = Stepper(model, voices=1, seed=seed)
        self.active = False
        self.phrase: object | None = None  # what the phrase being followed is heard by (its transcriber)
        self.taken = 0  # the musician's notes of the phrase taken
        self.played = 0  # notes handed over
        self.lag_s = 0.0

    def begin(self, meter: str, mode: str, shift: int, origin: float, spq: float, tune: int,
              phrase: object = None) -> None:
        """A phrase's key is fixed: follow from its first note (``origin`` the time of its grid's
        bar line, ``spq`` seconds per quarter note, ``shift`` semitones into the tune's C; ``tune``
        the number its notes carry; ``phrase`` what hears it)."""
        s = self._stepper
        s.reset()
        s.force([vocab.START, vocab.meter_token(meter), vocab.mode_token(mode)])
        self.meter, self.mode, self.shift, self.origin, self.spq, self.tune = meter, mode, shift, origin, spq, tune
        self.bar = Fraction(vocab.METER_EIGHTHS[meter], 2)
        self.lag_s = LAG_BEATS * QUARTERS_PER_BEAT[meter] * spq
        self._follower = Follower(meter, mode)
        self._held: dict[tuple[str, int], int] = {}  # accidentals held in the bar being written
        self._bar_index: int | None = None
        self._notes: list[_Follow] = []  # not yet over
        self._last: _Follow | None = None
        self.taken = 0
        self.phrase = phrase
        self._joining = True  # the notes heard before the key: what no output can still sound in time is only fed
        self.active = True

    # -- the listening thread ----------------------------------------------------------------------
    def follow(self, new: list[HeardNote], now: float) -> None:
        """The musician's notes since the last call (``Transcriber.melody(taken)``) and the clock:
        feed them to the row, hand over what is due and end what the musician ended."""
        if not self.active:
            return
        for heard in new:
            self._take(heard)
        self.taken += len(new)
        self._hand(now)

    def close(self, at: float) -> None:
        """The musician's phrase is over at ``at`` (a time): notes never released end there, and
        everything not yet handed over is."""
        if not self.active:
            return
        for follow in self._notes:
            if follow.heard.off is None:
                follow.heard.off = max(at, follow.heard.on)  # the transcriber ended it too (finish)
        self._hand(float("inf"))
        self.active = False

    # -- writing and feeding -------------------------------------------------------------------
    def _take(self, heard: HeardNote) -> None:
        pos = max(_SIXTEENTH * round((heard.on - self.origin) / self.spq / _SIXTEENTH), Fraction(-self.bar))
        last = self._last
        tokens: list[str] = []
        if last is not None:
            pos = max(pos, last.pos + _SIXTEENTH)
            last.next_on = heard.on
            tokens += self._lengths(last, pos)
        index = int(pos // self.bar)
        if self._bar_index is None:
            self._bar_index = index
        elif index > self._bar_index:
            tokens += ["|"] * min(index - self._bar_index, 2)  # empty bars at most one: the state, not the score
            self._bar_index = index
            self._held.clear()
        tokens.append(spell_near(heard.pitch + self.shift, self.mode, self._held))
        pitch = None
        for token in tokens:
            pitch = self._feed(token)
        follow = _Follow(heard, pitch if pitch is not None else heard.pitch + self.shift, pos)
        self._notes.append(follow)
        self._last = follow

    def _lengths(self, last: _Follow, pos: Fraction) -> list[str]:
        """The tokens after the last note's pitch, the next note at ``pos``: its length, and rests
        where the musician let go clearly before the next note."""
        gap = pos - last.pos
        sounded = gap
        if last.heard.off is not None:
            held = Fraction((last.heard.off - last.heard.on) / self.spq).limit_denominator(64)
            if held < HELD_FULL * gap:  # released clearly early: a rest follows (as the transcriber hears it)
                sounded = min(gap, max(_SIXTEENTH, _SIXTEENTH * round(held / _SIXTEENTH)))
        first = _spelled(sounded * 2)  # what no one token spells is its longest part that one does
        out = list(length_tokens(first) or [])
        left = gap * 2 - first
        for _ in range(4):  # the rest, longest first (a long silence is only the row's state: a few do)
            if left <= 0:
                break
            value = _spelled(left)
            out += ["z", *(length_tokens(value) or [])]
            left -= value
        return out

    def _feed(self, token: str) -> int | None:
        """One of the musician's tokens to the row: a pitch's version drawn (its pitch returned),
        anything else fed as played."""
        follower = self._follower
        follower.lead(token)
        if vocab.TOKEN_CLASS[vocab.INDEX[token]] is not TokenClass.PITCH:
            self._stepper.force(token)
            follower.took(token, None)
            return None
        steering = self.composer.steering(self.mode)
        temperature = steering.temperature
        bias = follower.bias(self.params.get("listen.cohesion"), temperature)
        if steering.logit_bias is not None:  # the performer's scale lock, divided as the follow bias is
            bias = bias + (steering.logit_bias / temperature if temperature > 0 else steering.logit_bias)
        controls: Controls = replace(steering, logit_bias=bias)
        sampled = vocab.TOKENS[int(self._stepper.step(controls)[0])]
        follower.took(sampled, None)
        return follower.last_pitch

    # -- sounding ----------------------------------------------------------------------------------
    def _hand(self, now: float) -> None:
        """Hand over, in order, each note whose end is known or whose time has nearly come (then
        with a ceiling), and end by a release each that sounds and whose end is now known."""
        lookahead = self.engine.lookahead + MARGIN_S
        settled = now - GROUPED_S
        try:
            self._hand_due(now, lookahead, settled)
        finally:
            self._joining = False

    def _hand_due(self, now: float, lookahead: float, settled: float) -> None:
        while self._notes:
            follow = self._notes[0]
            end = follow.end(settled)
            if follow.open:
                if end is None:
                    return
                self.engine.release(VOICE, end + self.lag_s)
                self._notes.pop(0)
                continue
            if end is None and now < follow.heard.on + self.lag_s - lookahead:
                return
            if self._joining and follow.heard.on + self.lag_s < now + lookahead:
                self._notes.pop(0)  # heard before the key was known: fed, its time gone
                continue
            ceiling = follow.heard.on + MAX_HELD_BARS * float(self.bar) * self.spq
            self._sound(follow, end if end is not None else ceiling)
            if end is None:
                follow.open = True
                return
            self._notes.pop(0)

    def _sound(self, follow: _Follow, end: float) -> None:
        p = self.params
        on, off = follow.heard.on + self.lag_s, max(end, follow.heard.on + 0.02) + self.lag_s
        bar_offset = float(follow.pos % self.bar)
        pitch = max(0, min(127, follow.pitch + int(p.get("transpose"))))
        placed = ScheduledNote(on, off, pitch, velocity(p.get("velocity"), p.get("dynamics"), p.get("accent"),
                                                        bar_offset, self.meter), int(p.get("channel")), self.tune, VOICE)
        self.engine.sound_placed(placed, self.meter, bar_offset, follow.pitch)
        self.played += 1


def _spelled(eighths: Fraction) -> Fraction:
    """The longest length (eighths) one token spells within ``eighths`` (the shortest if none)."""
    return next((v for v in LENGTHS if v <= eighths), LENGTHS[-1])
