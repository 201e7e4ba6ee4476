"""The model side of a performance: tune after tune, just in time, as notes on a beat timeline.

``next_notes()`` steps the network only until the next note is certain (its pitch and its
length) and returns it; it knows nothing of seconds, threads or devices. The real-time engine
calls it when the next note is due, and ``render`` calls it in a plain loop, so live and
offline performances come from the same code. Parameters are read at every token and handed
to the stepper as one ``Controls`` value per step, so a change applies to the very next token
sampled and no step sees half of one.

An ensemble (``instrument.live.ensemble``) plays from the same steps: every network voice (the
lead and its followers) is a row of one stepper, stepped together in one batched call per
token, each row with its own controls from its own ``voice.N.*`` parameters; a follower plays
its version of the lead's token one step behind (``instrument.live.follow``), and the chords and
the drone come from the lead's notes as they become certain (``music.accompany``). While a
chords voice plays, the engine asks for notes one beat group ahead (``lookahead_beats``), so each
group's chord hears the whole group of the melody.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from instrument.live import steering

from instrument.live.ensemble import SOLO, Ensemble
from instrument.live.follow import Follower
from instrument.model import header, vocab
from instrument.model.network import FolkRNN
from instrument.music.accompany import Accompaniment
from instrument.music.beat_groups import group_quarters
from instrument.music.drone import DRONE_PITCHES, strike
from instrument.music.harmony import ChordChange
from instrument.music.notes import Note, NoteStream
from instrument.music.vamp import Vamper
from instrument.live.models import ModelSwitch
from instrument.live.params import Parameters
from instrument.model.controls import PLAIN, Controls
from instrument.model.stepper import Stepper
from instrument.music.band import BandTune, VoiceLine
from instrument.music.tunes import Tune

log = logging.getLogger(__name__)
_END = vocab.INDEX[vocab.END]
# a turn after a musician's phrase begins with a note: its first token is neither a rest nor the end
_TURN_OPENING = np.zeros(vocab.SIZE)
_TURN_OPENING[[vocab.INDEX["z"], _END]] = -np.inf
MAX_TUNE_TOKENS = 1000  # a tune that never ends is ended here, as offline generation does
GAP_BEATS = 1.0  # quarter-note beats of silence between tunes
DRONE_HOLD_BEATS = 128.0  # a drone note's ceiling: the next strike or the tune's end ends it sooner
# what steers the network: values taken as they are, and numbers read as they glide (rounded); a voice's
# own are the same names under ``voice.N.``, where it has them (the held keys are everyone's)
STEERING_TARGETS = ("stimulation.source", "stimulation.token", "stimulation.keys", "ablation.layer", "ablation.set",
                    "ablation.mode", "ablation.units", "bias.scale", "bias.pitch_classes")
STEERING_GLIDES = ("stimulation.weight", "ablation.depth", "bias.end", "bias.strength", "bias.rests", "bias.triplets",
                   "bias.long_notes", "bias.short_notes")


@dataclass(frozen=True)
class ComposedNote:
    """A note on the performance timeline (quarter-note beats from the performance start)."""

    pitch: int
    beat: float
    duration: float
    bar_offset: float
    meter: str
    tune: int
    looped: bool = False
    token: int = -1  # body index of the token that wrote it (its pitch), for views that show the tune
    version: int = 0  # the parameters' version that token was sampled with (a view marks control changes)
    voice: int = 1  # which voice of the ensemble plays it (1: the lead)
    bar: int = -1  # the written bar it sits in (a page lights an accompaniment's note in the written score by it)


@dataclass(frozen=True)
class Release:
    """Every note the voice is sounding ends at ``beat``: a drone's at its tune's end (a drone
    note is struck before anyone knows how long its part lasts)."""

    voice: int
    beat: float
    tune: int


@dataclass
class TuneState:
    """The tune being written: what the live view and the ABC recording show."""

    number: int
    meter: str = ""
    mode: str = ""
    body: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)  # per body token: the parameters' version it was sampled with
    offset: float = 0.0  # performance beat at which the tune's beat 0 sits
    ended: bool = False
    bodies: dict[int, list[str]] = field(default_factory=dict)  # each follower's tokens, by voice (one per lead token)
    accompaniment: dict[int, list[Note]] = field(default_factory=dict)  # chords and drone notes by voice (tune time)
    chords: dict[int, list[ChordChange]] = field(default_factory=dict)  # the chord of each beat group, by voice
    heard: list[tuple[int, int]] = field(default_factory=list)  # (first, end) body indices a musician played

    def voices(self, ensemble: Ensemble) -> tuple[VoiceLine, ...]:
        """The tune's other voices as the ABC writes them (a copy: any thread may call it)."""
        if len(ensemble.voices) == 1:
            return ()
        lines = []
        for v in ensemble.voices[1:]:
            lines.append(VoiceLine(v.number, v.name, v.role, tuple(self.bodies.get(v.number, ())),
                                   tuple(self.accompaniment.get(v.number, ())), tuple(self.chords.get(v.number, ()))))
        return tuple(lines)


class Composer:
    """Generates a performance note by note from a model, steered by live parameters."""

    def __init__(self, model: FolkRNN, params: Parameters, seed: int | None = None, model_path: str | None = None,
                 models: ModelSwitch | None = None, ensemble: Ensemble = SOLO):
        self.params = params
        self.seed = seed
        self.ensemble = ensemble
        self.rows = ensemble.network  # the stepper's rows: the lead, then each follower
        self.programs: dict[int, int] = {}  # voice -> General MIDI program, for the ABC (set by the performance)
        self.stepper = Stepper(model, voices=len(self.rows), seed=seed)
        self.orders = steering.UnitOrders(model.config.hidden, model_path, seed=0 if seed is None else seed)
        self.layers = model.config.layers
        self.models = models  # switches the model at a tune boundary (``model.next``); None: one model
        self.tune: TuneState | None = None
        self.tap: Callable[..., object] | None = None  # e.g. analysis.taps.ActivityTap, called after each step
        self.finished: deque[tuple[int, Tune]] = deque()  # (number, tune) completed since last taken
        self.tune_count = 0
        self.head = 0.0  # performance beat where the next note can start at the earliest
        self._stream: NoteStream | None = None
        self._seen_new = params.fired("tune.new")
        # playing in turns with a musician (instrument/live/listen.py): ``waiting`` while it is the
        # musician's turn (nothing is composed); ``turn_bars`` bars of ours are left in an answer
        self.turns = False
        self.waiting = False
        self.turn_bars: int | None = None
        self._turn_from: float | None = None  # where our turn began: what any voice places before it was heard
        self._turn_opens = False  # the next token sampled is our turn's first
        self._steer_key: tuple | None = None
        self._steered = PLAIN
        self.controls = PLAIN  # what the lead's last step was steered with (views read it; replaced whole)
        self.voice_controls: dict[int, Controls] = {}  # each follower's, by voice
        self._voice_steer: dict[int, tuple[tuple, Controls]] = {}
        self._followers: list[Follower] = []
        self._followed = False  # the followers have a lead token to play (not at a tune's first body step)
        self._band: Accompaniment | None = None
        self._vampers: dict[int, Vamper] = {}
        self._voice_scale: dict[int, object] = {}  # each follower's scale-lock bias (None: none)
        self._bar_notes: list[ComposedNote] = []  # the bar being played, to find the last whole bar
        self._last_bar: list[ComposedNote] = []
        self._backing: dict[float, list[ComposedNote]] = {}  # the chords of the last bars, by bar (they come a group late)
        self._loop: deque[ComposedNote] = deque()
        self._loop_end = 0.0  # performance beat where the loop being played ends
        self.applied: deque[tuple[int, float]] = deque(maxlen=4096)  # (params.version steered with, time the step began) per token
        self.tokens_sampled = 0
        self._failed_at: int | None = None  # params.version whose controls made a step fail
        self._failures = 0  # in a row
        self._missing: set[tuple[str, int]] = set()  # sets said to be missing on a layer
        # every installed ablation set is read now: neither the model thread nor a controller
        # (an OSC packet from anyone) ever reads a file during the performance
        for problem in self.orders.preload(self.layers):
            log.warning("%s; that set plays as the random order", problem)

    # -- the one entry point ---------------------------------------------------------------
    def next_notes(self, now: float | None = None) -> list[ComposedNote]:
        """Step until at least one note is certain and return the notes that became certain
        (several when a repeat is played out). Returns [] once ``head`` moved on without a note
        (a rest became known further: the caller waits for it, so a run of rests holds the
        model back as notes do), or after a bounded amount of work: just call again. ``now``:
        the performance beat sounding now, where a ``tune.new`` ends a rest being waited out."""
        if self.waiting:
            return []  # the musician's turn
        if self.params.get("hold") and self._last_bar:
            return [self._next_loop_note()]
        self._loop.clear()
        if self.params.fired("tune.new") != self._seen_new:
            self._seen_new = self.params.fired("tune.new")
            if self.tune is not None and not self.tune.ended:
                if now is not None:  # the new tune starts from now, not from the end of a rest
                    self.head = max(self.tune.offset + self._stream.played, min(self.head, now))
                notes = self._end_tune(produced_end=False)
                if notes:
                    return notes
        if self.tune is None or self.tune.ended:
            if self.turns:  # in turns, a tune begins with the musician's opening
                self.waiting = True
                return []
            self._start_tune()
        head = self.head
        for _ in range(64):
            notes = self._step()
            if notes:
                return notes
            if self.tune.ended or self.head > head:
                return []
        return []

    # -- tunes -----------------------------------------------------------------------------
    def prepare(self, model: FolkRNN, path: str) -> tuple[Stepper, steering.UnitOrders]:
        """A stepper and unit orders for another model, made ready off the model thread (by
        ``ModelSwitch``'s loader): the first step's one-off costs paid, the ablation set read."""
        stepper = Stepper(model, voices=len(self.rows), seed=self.seed)
        stepper.force(vocab.START)
        stepper.step()
        orders = steering.UnitOrders(model.config.hidden, path, seed=0 if self.seed is None else self.seed)
        for problem in orders.preload(model.config.layers):  # every installed set, here and not mid-tune
            log.warning("%s; that set plays as the random order", problem)
        return stepper, orders

    def write_heard(self, tokens: list[str]) -> None:
        """A musician's tokens (a transcription's, ``M:`` and ``K:`` first when they open a tune) as
        the next of the tune: fed to the network as if it had written them, written into the tune
        marked as heard, never played. A header, or tokens after a tune ended, open a new tune in
        its meter and mode. Called token by token as the musician plays (the view shows the tune
        grow), on the model thread (``Engine.call_soon``)."""
        if not tokens:
            return
        header = [t for t in tokens if t.startswith(("M:", "K:"))]
        body = [t for t in tokens if not t.startswith(("M:", "K:"))]
        if header or self.tune is None or self.tune.ended:
            if self.tune is not None and not self.tune.ended:
                self._end_tune(produced_end=False)  # its last notes were heard, not played
            meter = next((vocab.meter_of(t) for t in header if t.startswith("M:")), self.meter)
            mode = next((vocab.mode_of(t) for t in header if t.startswith("K:")), "maj")
            self._start_tune(meter, mode)
        tune = self.tune
        first = len(tune.body)
        for token in body:
            self._step(heard=token)  # its notes, every voice's, are dropped: heard, not played
            if tune.ended:  # a phrase longer than any tune (MAX_TUNE_TOKENS) ended it
                break
        if tune.heard and tune.heard[-1][1] == first:  # the phrase goes on
            tune.heard[-1] = (tune.heard[-1][0], len(tune.body))
        elif body:
            tune.heard.append((first, len(tune.body)))

    def take_played(self, tokens: list[str], bars: int | None = None, at: float | None = None) -> None:
        """The end of a musician's phrase (its tokens not yet ``write_heard``), then our turn: ``bars``
        bars (an answer), or to the tune's end (None); the tune goes on at performance beat ``at``
        (the time moved on while it was heard)."""
        self.write_heard(tokens)
        if self.tune is None or self.tune.ended:
            self._start_tune()  # nothing was heard: the network begins a tune of its own
        tune, stream = self.tune, self._stream
        stream.repeats = False
        if at is not None:
            tune.offset = at - stream.horizon
        self.head = self._turn_from = tune.offset + stream.horizon
        self._bar_notes, self._last_bar = [], []
        self.turn_bars = bars
        self.waiting = False
        self._turn_opens = True

    def take_over(self, bar_line: float) -> None:
        """The musician stopped leading (``listen`` off after ``along``): the network goes on with
        the tune from what it heard, the bar it stands in placed on ``bar_line`` (a performance
        beat), so its bars keep to the clock's."""
        tune, stream = self.tune, self._stream
        tune.offset = bar_line - (stream.played - stream.bar_position)
        self.head = self._turn_from = tune.offset + stream.horizon
        self._bar_notes, self._last_bar = [], []
        self.turn_bars, self.waiting = None, False
        self._turn_opens = True

    @property
    def bar_position(self) -> float:
        """Quarter-note beats the tune being written stands into its bar (0 before a tune)."""
        return self._stream.bar_position if self.tune is not None and not self.tune.ended else 0.0

    def _start_tune(self, meter: str | None = None, mode: str | None = None) -> None:
        """A new tune from ``<s>``: its meter and mode as given (a musician's), else as the
        parameters say or the model draws them."""
        if self.models is not None:  # a model prepared in the background takes over here, between tunes
            ready = self.models.take(self.params.get("model.next"), self.tune_count + 1, (self.stepper, self.orders))
            if ready is not None:
                self.stepper, self.orders = ready.parts
        self.tune_count += 1
        self._turn_from = None
        start = 0.0 if self.tune is None else self.head + GAP_BEATS
        self.tune = TuneState(self.tune_count, offset=start)
        s = self.stepper
        s.reset()
        s.force(vocab.START)
        self._steer_key = None
        body = self._controls()  # the network's controls now (no scale bias: the mode is not drawn yet)
        meter, mode = meter or self.params.get("meter.next"), mode or self.params.get("mode.next")
        tokens = []
        lead_only = [0] if len(self.rows) > 1 else None  # the followers play the lead's header
        for stage, choice, make in (("meter", meter, vocab.meter_token), ("mode", mode, vocab.mode_token)):
            if choice != "auto":
                s.force(make(choice), controls=body)
                tokens.append(make(choice))
            else:  # drawn by the model, by the one rule of model.header
                self.controls = header.controls([stage], body)
                tokens.append(vocab.TOKENS[int(s.step(self.controls, voices=lead_only)[0])])
                if lead_only:
                    s.force(tokens[-1], voices=range(1, len(self.rows)), controls=body)
        self.tune.meter, self.tune.mode = vocab.meter_of(tokens[0]), vocab.mode_of(tokens[1])
        self._stream = NoteStream(self.tune.meter, self.tune.mode)
        self._steer_key = None
        self._bar_notes, self._last_bar, self._backing = [], [], {}
        self._followers = [Follower(self.tune.meter, self.tune.mode) for _ in self.rows[1:]]
        self._followed = False
        for v, follower in zip(self.rows[1:], self._followers):
            self.tune.bodies[v.number] = follower.body
        accompanists = [v for v in self.ensemble.voices if v.role in ("chords", "drone")]
        self._band = Accompaniment(self.tune.meter, self.tune.mode) if accompanists else None
        self._vampers = {v.number: Vamper(self.tune.meter) for v in accompanists if v.role == "chords"}
        for v in accompanists:
            self.tune.accompaniment[v.number] = []
            if v.role == "chords":
                self.tune.chords[v.number] = []

    @property
    def lookahead_beats(self) -> float:
        """How far ahead of the music the lead must be composed: one beat group of the tune's
        meter while a chords voice hears each group whole before its chord is chosen, else 0."""
        tune = self.tune
        if self._vampers and tune is not None and tune.meter and not tune.ended:
            return group_quarters(tune.meter)
        return 0.0

    @property
    def meter(self) -> str:
        """The meter of the tune being written (4/4 before the first): what a bar of silence
        lasts before any note has set one."""
        tune = self.tune
        return tune.meter if tune is not None and tune.meter else "4/4"

    def tune_in_progress(self) -> tuple[int, Tune] | None:
        """The tune being written as it stands, a copy (any thread: recordings save it as it goes)."""
        tune = self.tune
        if tune is None or tune.ended:
            return None
        return tune.number, self._written(Tune(tune.meter, tune.mode, list(tune.body), ended=False, heard=tuple(tune.heard)))

    def cut(self) -> None:
        """End the tune being written where it stands (the performance is over)."""
        if self.tune is not None and not self.tune.ended:
            if self.tune.body:
                self._end_tune(produced_end=False)
            self.tune.ended = True

    def _end_tune(self, produced_end: bool) -> list[ComposedNote | Release]:
        """Flush the tune's last note; ``produced_end``: the model wrote ``</s>`` (not cut off)."""
        for follower in self._followers:  # a tune cut off: what they had no turn to vary, they play as written
            follower.close(self.tune.body)
        notes = self._place(self._stream.close(), None)
        if not (notes or self._bar_notes or self._last_bar):  # a tune without a note still takes
            self.head = max(self.head, self.tune.offset)  # its gap: time goes on, the engine waits
        self.tune.ended = True
        end = self.tune.offset + self._stream.played
        notes += [Release(v.number, end, self.tune.number) for v in self.ensemble.of("drone")]
        self.finished.append((self.tune.number, self._written(Tune(self.tune.meter, self.tune.mode, list(self.tune.body),
                                                                    ended=produced_end, heard=tuple(self.tune.heard)))))
        return notes

    def _written(self, tune: Tune) -> Tune | BandTune:
        """The tune as recordings write it: the lead's, with the other voices' parts in an ensemble."""
        voices = self.tune.voices(self.ensemble)
        if not voices:
            return tune
        return BandTune(tune, voices, tuple(self.programs.items()))

    def _random_order(self, name: str, layer: int) -> tuple[int, ...]:
        """The random order, for a set that was not installed for ``layer`` (said once)."""
        if name != "random" and (name, layer) not in self._missing:
            self._missing.add((name, layer))
            log.warning("ablation set %r has no file for layer %d; using the random order", name, layer)
        return self.orders.get("random", layer)  # computed, never read from disk

    def recover(self) -> None:
        """After a failed step (a control the model cannot take, or a bug): the network plays
        on with plain controls until a parameter changes; after repeated failures the tune is
        ended and a new one begun. The engine calls this and skips the note."""
        self._failures += 1
        self._failed_at = self.params.version
        self._steer_key = None
        tune = self.tune
        if self._failures >= 3 and tune is not None and not tune.ended:
            tune.ended = True  # the next call starts afresh from <s>; what was written is kept
            self.finished.append((tune.number, self._written(Tune(tune.meter, tune.mode, list(tune.body), ended=False))))

    def _step(self, heard: str | None = None) -> list[ComposedNote]:
        """One token of the lead (and each follower's version of the lead's last): sampled, or
        ``heard``, a musician's, in its place (the followers play theirs of it, the accompaniment
        hears it, as of a token of the lead's own)."""
        began = time.perf_counter()  # the time first, then the version the step is steered with:
        version = self.params.version  # a set before ``began`` is in ``version`` (or newer)
        if self._failed_at != version:
            self._failed_at = None
            self.controls = self._controls()
        else:  # plain controls at the performer's temperature, until a parameter changes
            self.controls = Controls(temperature=self.controls.temperature, guard=self.controls.guard)
        if self._turn_opens and heard is None:  # a player answers on the beat: with a note
            self._turn_opens = False
            bias = self.controls.logit_bias
            self.controls = replace(self.controls, logit_bias=_TURN_OPENING if bias is None else bias + _TURN_OPENING)
        followers = self._followers
        if followers and self._followed:  # every row in one batched step
            rows = [self.controls] + [self._follower_controls(v.number, f) for v, f in zip(self.rows[1:], followers)]
            tokens = self.stepper.step(rows)
        elif followers:  # the tune's first note: the followers have nothing to play yet
            tokens = self.stepper.step(self.controls, voices=[0])
        else:
            tokens = self.stepper.step(self.controls)
        if heard is not None:
            self.stepper.replace(0, heard)
            token = vocab.INDEX[heard]
        else:
            token = int(tokens[0])
        self._failures = 0
        self.tokens_sampled += 1
        self.applied.append((version, began))
        if self.tap is not None:  # live activity for the view and OSC: decimated, never waits
            self.tap(self.stepper.readout, token)
        ended = token == _END or len(self.tune.body) >= MAX_TUNE_TOKENS
        if followers and self._followed:  # their versions of the lead's last token, the lead's next one known
            following = None if token == _END else vocab.TOKENS[token]
            for row, follower in enumerate(followers, 1):
                sampled = vocab.TOKENS[int(tokens[row])]
                fed = follower.took(sampled, following)
                if fed != sampled:
                    self.stepper.replace(row, fed)
        if ended:
            return self._end_tune(produced_end=token == _END)
        text = vocab.TOKENS[token]
        self.tune.versions.append(version)
        self.tune.body.append(text)
        for follower in followers:
            follower.lead(text)
        self._followed = True
        # read at each token: a repeat sign plays its section again only while repeats is 'play';
        # with 'skip' every note is newly composed, so a control is heard within one note there too
        # in turns with a musician a repeat is not played back: it would replay what they played
        self._stream.repeats = self.params.get("repeats") == "play" and not self.turns
        notes = self._place(self._stream.push(text), text)
        self.head = max(self.head, self.tune.offset + self._stream.horizon)  # a rest, as far as it is known
        if heard is None and self.turn_bars is not None and vocab.TOKEN_CLASS[token] is vocab.TokenClass.BAR:
            self.turn_bars -= 1
            if self.turn_bars <= 0:  # the answer is as long as the call: the musician's turn
                self.turn_bars, self.waiting = None, True
        return notes

    def _place(self, notes: list[Note], token: str | None) -> list[ComposedNote]:
        """The ComposedNotes of the lead's notes just made certain (the lead's ``token`` pushed;
        None: the tune ended), with every other voice's notes that they made certain."""
        out = []
        tune = self.tune
        versions = tune.versions
        for n in notes:
            version = versions[n.token] if 0 <= n.token < len(versions) else 0
            played = ComposedNote(n.pitch, tune.offset + n.start, n.duration, n.bar_offset, tune.meter,
                                  tune.number, token=n.token, version=version, bar=n.bar)
            out.append(played)
            # the play head is where the next note can start: the stream's as-played position, not
            # the longest note's end (a chord's long note must not make the next note late)
            self.head = max(self.head, tune.offset + self._stream.played)
            self._remember(played)
        for v, follower in zip(self.rows[1:], self._followers):
            for n in follower.notes(notes):
                version = versions[n.token] if 0 <= n.token < len(versions) else 0
                out.append(self._composed(n, v.number, version))
        if self._band is not None:
            changes, openings = (self._band.push(token, notes, self._stream) if token is not None
                                 else self._band.close(notes, self._stream))
            for v in self.ensemble.voices:
                if v.role == "chords":
                    tune.chords[v.number] += changes
                    made = [n for change in changes for n in self._vampers[v.number].notes(change)]
                elif v.role == "drone":
                    made = [n for opening in openings for n in strike(opening, DRONE_PITCHES, DRONE_HOLD_BEATS)]
                else:
                    continue
                tune.accompaniment[v.number] += made
                out += [self._composed(n, v.number, 0) for n in made]
        if self._turn_from is not None:  # a voice's notes in the musician's bars (a follower's last, a chord) were heard
            out = [n for n in out if n.beat >= self._turn_from - 1e-9]
        return out

    def _composed(self, n: Note, voice: int, version: int) -> ComposedNote:
        played = ComposedNote(n.pitch, self.tune.offset + n.start, n.duration, n.bar_offset, self.tune.meter,
                              self.tune.number, token=n.token, version=version, voice=voice, bar=n.bar)
        role = self.ensemble.voice(voice).role
        if role == "follow":  # it comes with the lead's notes, in their order
            self._remember(played)
        elif role == "chords":  # a beat group behind the lead: kept by its bar, joined to the bar when it loops
            bar = round(played.beat - played.bar_offset, 6)
            self._backing.setdefault(bar, []).append(played)
            while len(self._backing) > 4:
                del self._backing[min(self._backing)]
        return played  # (a held bar loops every voice but the drone, which holds on)

    # -- hold: loop the last whole bar -----------------------------------------------------
    def _remember(self, note: ComposedNote) -> None:
        bar_start = note.beat - note.bar_offset
        if self._bar_notes and bar_start > self._bar_notes[-1].beat - self._bar_notes[-1].bar_offset + 1e-6:
            self._last_bar = self._bar_notes  # a new bar began: the previous one is whole
            self._bar_notes = []
        self._bar_notes.append(note)

    def _next_loop_note(self) -> ComposedNote:
        if not self._loop:
            first = self._last_bar[0]
            bar_start = first.beat - first.bar_offset
            extent = max(n.beat + n.duration for n in self._last_bar) - bar_start
            length = max(vocab.METER_EIGHTHS[first.meter] / 2, extent)  # an overfull bar loops whole
            shift = self.head - bar_start  # the loop starts at the play head, keeping the bar's rhythm
            bar = sorted(self._last_bar + self._backing.get(round(bar_start, 6), []), key=lambda n: (n.beat, n.voice))
            self._loop.extend(replace(n, beat=n.beat + shift, looped=True) for n in bar)
            self.tune.offset += length  # the tune resumes one loop later
            self._loop_end = self.head + length
        note = self._loop.popleft()
        # the play head is the next looped note (the engine asks for a note when the head is due:
        # the loop's end would make every looped note a whole loop late)
        self.head = self._loop[0].beat if self._loop else self._loop_end
        return note

    # -- parameters -> network controls ----------------------------------------------------
    def _follower_controls(self, voice: int, follower: Follower) -> Controls:
        """A follower row's controls for this step: its own temperature, stimulation, ablation
        and scale lock (``voice.N.*``), and the bias that makes it follow (``Follower.bias``)."""
        steered = self._steered_voice(voice)
        p = self.params
        temperature = p.get(f"voice.{voice}.temperature")
        bias = follower.bias(p.get(f"voice.{voice}.cohesion"), temperature)
        scale = self._voice_scale.get(voice)
        if scale is not None:
            bias = bias + (scale / temperature if temperature > 0 else scale)
        controls = replace(steered, temperature=temperature, logit_bias=bias)
        self.voice_controls[voice] = controls
        return controls

    def _steered_voice(self, voice: int) -> Controls:
        """A follower's stimulation and ablation (and its scale lock in ``_voice_scale``),
        rebuilt only when a parameter changed, so its ablation masks are reused from step to step."""
        p = self.params
        name = f"voice.{voice}."
        key = self._steering_key(name)
        cached = self._voice_steer.get(voice)
        if cached is not None and cached[0] == key:
            return cached[1]
        layer = min(p.get(name + "ablation.layer"), self.layers)
        order = self.orders.cached(p.get(name + "ablation.set"), layer) or self._random_order(p.get(name + "ablation.set"), layer)
        bias = steering.logit_bias(self.tune.mode, steering.scale_pitch_classes(p.get(name + "bias.scale"), p.get(name + "bias.pitch_classes")),
                                   p.get(name + "bias.strength"))
        self._voice_scale[voice] = bias
        steered = Controls(
            stimulation=steering.stimulation(p.get(name + "stimulation.source"), p.get(name + "stimulation.weight"),
                                             p.get(name + "stimulation.token"), p.get("stimulation.keys")),
            ablation=steering.ablation(order, p.get(name + "ablation.depth"), layer, p.get(name + "ablation.mode"),
                                       p.get(name + "ablation.units")),
        )
        self._voice_steer[voice] = (key, steered)
        return steered

    def _steering_key(self, prefix: str = "", mode: str | None = None) -> tuple:
        """What the network's controls are made of now (for the lead, or ``voice.N.``; in the
        tune's mode, or ``mode``): when it is unchanged, so are they. A flood of other parameters
        (tempo, swing) changes nothing here."""
        p, specs = self.params, self.params.specs
        own = lambda name: prefix + name if prefix + name in specs else name  # noqa: E731
        return (mode or self.tune.mode, *(p.target(own(name)) for name in STEERING_TARGETS),
                *(round(p.get(own(name)), 4) for name in STEERING_GLIDES))

    def _controls(self) -> Controls:
        return self.steering(self.tune.mode)

    def steering(self, mode: str) -> Controls:
        """The lead's controls of the next token from the parameters, for a tune in ``mode``:
        rebuilt when a parameter that steers the network changed (the scale bias needs the mode:
        none before it is drawn), else the same value, with the temperature and the guard read
        afresh (a smoothed temperature moves every token). A flood of other parameters (tempo,
        swing) rebuilds nothing. The model thread's; a musician's along voice asks while that
        thread is parked (instrument/live/along.py)."""
        p = self.params
        key = self._steering_key(mode=mode)
        temperature, guard = p.get("temperature"), bool(p.get("guard"))
        if key != self._steer_key:
            self._steer_key = key
            layer = min(p.get("ablation.layer"), self.layers)
            order = self.orders.cached(p.get("ablation.set"), layer) or self._random_order(p.get("ablation.set"), layer)
            bias = steering.logit_bias(
                mode,
                steering.scale_pitch_classes(p.get("bias.scale"), p.get("bias.pitch_classes")),
                p.get("bias.strength"), p.get("bias.rests"), p.get("bias.triplets"),
                p.get("bias.long_notes"), p.get("bias.short_notes"), p.get("bias.end"),
            ) if mode else None
            self._steered = Controls(
                temperature=temperature,
                logit_bias=bias,
                stimulation=steering.stimulation(p.get("stimulation.source"), p.get("stimulation.weight"),
                                                 p.get("stimulation.token"), p.get("stimulation.keys")),
                ablation=steering.ablation(order, p.get("ablation.depth"), layer, p.get("ablation.mode"),
                                           p.get("ablation.units")),
                guard=guard,
            )
        elif self._steered.temperature != temperature or self._steered.guard != guard:
            self._steered = replace(self._steered, temperature=temperature, guard=guard)
        return self._steered
