"""The one registry of live parameters: what controllers move and the engine reads.

Every voice of an ensemble (docs/design.md §11) has its own parameters, named ``voice.N.X``
(``voice_specs``): ``voice.2.temperature``, ``voice.3.mute``. The lead is voice 1, and its
parameters keep their unnumbered names, so every patch written for one voice plays on; each
``voice.1.X`` is another name for ``X`` (``lead_aliases``), one spec and one value.

Controllers write from their own threads; the model thread reads at every token and the
timing thread at every note. No lock is taken on either path: each parameter's state is one
immutable tuple replaced in a single assignment (atomic in CPython), and smoothing is
computed from it at read time, so readers never wait for writers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from instrument.errors import excerpt
from instrument.model import catalog, vocab
from instrument.music.keys import parse_key
from instrument.music.timbres import DEFAULT as DEFAULT_TIMBRE, GM_TIMBRES, find_timbre

log = logging.getLogger(__name__)


class ParamError(ValueError):
    """A set that cannot be applied (unknown name, wrong type): controllers log and ignore it.

    ``reason`` says what is wrong without quoting the value, for messages about text read from a
    file (a patch refusal never echoes what a file holds)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ParamSpec:
    """One live parameter: its range, default, unit and how fast it may glide."""

    name: str
    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    smoothing_ms: float = 0.0
    choices: tuple[str, ...] = ()
    doc: str = ""
    validate: Callable[[Any], Any] | None = None

    def coerce(self, value: Any, clamp: bool = True) -> tuple[Any, str | None]:
        """The value this parameter takes for ``value``, and a warning if it was clamped: the one
        check of a value, whoever sends it (``Parameters.set``; patch checking, before a set).

        ``clamp`` (live controllers): a number outside the range is clamped with a warning, and a
        number picks a choice by index (a knob or a fader). Without it (the command line, a
        patch's values) both are errors. Raises ParamError for a value that cannot be taken: the
        wrong type (a bool is not a number), NaN or infinity, an unknown choice, a refused item.
        """
        kind = self.kind
        if kind in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"{self.name} takes a number, not {excerpt(value, 60, quote=True)}")
            if math.isnan(value) or math.isinf(value):
                raise ParamError(f"{self.name} takes a finite number, not {value!r}")
            warning = None
            lo, hi = self.minimum, self.maximum
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                unit = f" {self.unit}" if self.unit else ""
                if not clamp:
                    raise ParamError(f"{self.name}={value!r} is outside {lo}..{hi}{unit}")
                clamped = min(max(value, lo if lo is not None else value), hi if hi is not None else value)
                warning = f"{self.name}={value!r} is outside {lo}..{hi}{unit}; clamped to {clamped}"
                value = clamped
            return (int(round(value)) if kind == "int" else float(value)), warning
        if kind == "bool":
            if isinstance(value, str) and value.lower() in ("true", "on", "yes", "1", "false", "off", "no", "0"):
                return value.lower() in ("true", "on", "yes", "1"), None
            if isinstance(value, (bool, int, float)):
                return bool(value), None
            raise ParamError(f"{self.name} takes on/off (a bool or 0/1), not {excerpt(value, 60, quote=True)}")
        if kind == "choice":
            if clamp and isinstance(value, (int, float)) and not isinstance(value, bool) and self.choices:
                index = min(max(int(value), 0), len(self.choices) - 1)  # a knob or a fader picks by index
                return self.choices[index], None
            if isinstance(value, str) and self.validate:
                value = self.validate(value)  # a spelling of a choice ('Tin Whistle' -> 'tin-whistle')
            if not isinstance(value, str) or value not in self.choices:
                raise ParamError(f"{self.name} takes one of {', '.join(self.choices)}, not {excerpt(value, 60, quote=True)}")
            return value, None
        if kind == "text":
            value = str(value)
            return (self.validate(value) if self.validate else value), None
        if kind == "list":
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise ParamError(f"{self.name} takes a list, not {excerpt(value, 60, quote=True)}")
            value = tuple(value)
            return (self.validate(value) if self.validate else value), None
        raise ParamError(f"{self.name} is a trigger: fire it, do not set it")


@dataclass(frozen=True)
class _State:
    target: Any
    start: Any
    t0: float
    tau: float  # smoothing time constant in seconds (0 = jump)
    source: str
    version: int


@dataclass
class Change:
    """A record of the last thing that moved a parameter (for the live view)."""

    name: str
    value: Any
    source: str
    at: float


class Parameters:
    """Live parameter values with sources, smoothing, clamping and triggers."""

    def __init__(self, specs: Iterable[ParamSpec] | None = None, clock: Callable[[], float] = time.monotonic):
        self.specs: dict[str, ParamSpec] = {s.name: s for s in (specs if specs is not None else INSTRUMENT_PARAMS)}
        self.aliases: dict[str, str] = lead_aliases(self.specs)  # voice.1.X -> X
        self._clock = clock
        now = clock()
        self._state: dict[str, _State] = {
            s.name: _State(s.default, s.default, now, 0.0, "default", 0) for s in self.specs.values() if s.kind != "trigger"
        }
        self._fired: dict[str, int] = {s.name: 0 for s in self.specs.values() if s.kind == "trigger"}
        self.version = 0  # bumped by every set and trigger: a reader notices change with one compare
        self._write = threading.Lock()  # serialises writers only; readers never take it
        self.last_change: Change | None = None
        self.listeners: list[Callable[[Change], None]] = []  # told of every change
        self._listeners_of: dict[str, tuple[Callable[[Change], None], ...]] = {}  # told of one parameter's

    # -- writing (controller threads) -----------------------------------------------------
    def set(self, name: str, value: Any, source: str = "", smoothing_ms: float | None = None, *,
            clamp: bool = True, warn: Callable[[str], None] | None = None) -> Any:
        """Set ``name`` to ``value``; returns the value taken. The value is checked here, once,
        by ``ParamSpec.coerce``: with ``clamp`` (live controllers) a value out of range is clamped
        and the warning goes to ``warn`` (default: this module's log); without, it is an error.

        Raises ParamError for an unknown parameter or a value it cannot take.
        """
        spec = self._spec(name)
        name = spec.name
        value, warning = spec.coerce(value, clamp)
        if warning:
            message = f"{warning}{f' (from {source})' if source else ''}"
            (warn or log.warning)(message)
        tau = (spec.smoothing_ms if smoothing_ms is None else smoothing_ms) / 1000.0
        if spec.kind not in ("float", "int"):
            tau = 0.0
        was = self._state[name]
        if value == was.target and source == was.source and tau == was.tau:
            return value  # nothing changes (a glide to the same target goes on as it would restart): no version, no listener
        with self._write:
            now = self._clock()
            current = self.get(name, now)
            self.version += 1
            self._state[name] = _State(value, current, now, tau, source, self.version)
            self.last_change = Change(name, value, source, now)
        self._notify(self.last_change)
        return value

    def fire(self, name: str, source: str = "") -> None:
        """Fire a trigger (new tune, panic): readers see its count go up."""
        spec = self._spec(name)
        name = spec.name
        if spec.kind != "trigger":
            raise ParamError(f"{name} is not a trigger; set it to a value")
        with self._write:
            self._fired[name] += 1
            self.version += 1
            self.last_change = Change(name, "fired", source, self._clock())
        self._notify(self.last_change)

    def listen(self, listener: Callable[[Change], None], *names: str) -> None:
        """Call ``listener(change)`` on the writer's thread when one of ``names`` changes (it must
        be quick: a controller's thread waits for it). Unknown names raise ParamError."""
        for name in names:
            name = self._spec(name).name  # a voice's alias of the lead's parameter is the lead's
            self._listeners_of[name] = (*self._listeners_of.get(name, ()), listener)

    def unlisten(self, listener: Callable[[Change], None]) -> None:
        """Stop calling ``listener`` (for any name; idempotent)."""
        if listener in self.listeners:
            self.listeners.remove(listener)
        self._listeners_of = {name: tuple(f for f in fs if f != listener) for name, fs in self._listeners_of.items()}

    def _notify(self, change: Change) -> None:
        for listener in (*self.listeners, *self._listeners_of.get(change.name, ())):
            try:
                listener(change)
            except Exception:  # a broken listener must not break a controller
                log.exception("parameter listener failed")

    # -- reading (any thread, lock-free) ---------------------------------------------------
    def get(self, name: str, now: float | None = None) -> Any:
        try:
            state = self._state[name]
        except KeyError:  # voice.1.X is X (a name that is neither raises KeyError, as before)
            state = self._state[self.aliases[name]]
        if state.tau <= 0.0:
            return state.target
        elapsed = (self._clock() if now is None else now) - state.t0
        if elapsed >= 8 * state.tau:
            return state.target
        value = state.target + (state.start - state.target) * math.exp(-elapsed / state.tau)
        return value

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def target(self, name: str) -> Any:
        return self._state[self.canonical(name)].target

    def fired(self, name: str) -> int:
        """How often a trigger has fired; compare with the count you last saw."""
        return self._fired[name]

    def source(self, name: str) -> str:
        return self._state[self.canonical(name)].source

    def canonical(self, name: str) -> str:
        """The parameter's own name (``voice.1.temperature`` is ``temperature``)."""
        return self.aliases.get(name, name)

    def lookup(self) -> dict[str, ParamSpec]:
        """Every name a controller may use, aliases included, with its spec."""
        return {**self.specs, **{alias: self.specs[name] for alias, name in self.aliases.items()}}

    def snapshot(self) -> dict[str, Any]:
        """Every parameter's current target value (triggers as their fire counts), JSON-ready."""
        out: dict[str, Any] = {}
        for name, spec in self.specs.items():
            if spec.kind == "trigger":
                out[name] = self._fired[name]
            else:
                value = self._state[name].target
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def _spec(self, name: str) -> ParamSpec:
        try:
            return self.specs[self.canonical(name)]
        except KeyError:
            voice, base = voice_of(name)
            prefix = f"voice.{voice}."
            own = sorted(n[len(prefix):] for n in self.specs if n.startswith(prefix))
            if voice > 1 and own:
                raise ParamError(f"unknown parameter {name!r}: voice {voice} takes {', '.join(own)}") from None
            if voice > 1 and (base in self.specs or base in VOICE_OWN):
                voices = sorted({voice_of(n)[0] for n in self.specs if n.startswith("voice.")} - {1})
                have = f"voices 2..{voices[-1]}" if voices else "only the lead (voice 1)"
                raise ParamError(f"unknown parameter {name!r}: this ensemble has {have}; "
                                 f"see --ensemble list") from None
            raise ParamError(f"unknown parameter {name!r}") from None


def _vocab_token(value: str) -> str:
    if value not in vocab.INDEX:
        raise ParamError(f"unknown token {excerpt(value, 60, quote=True)}; nearest: {', '.join(vocab.nearest(value))}")
    return value


def _listen_key(value: str) -> str:
    try:
        parse_key(str(value))
    except ValueError as error:
        raise ParamError(f"listen.key: {error}") from None
    return str(value)


def _timbre(value: str) -> str:
    try:
        return find_timbre(value).name
    except ValueError as error:
        raise ParamError(str(error)) from None


def _midi_notes(values: tuple) -> tuple[int, ...]:
    try:
        notes = tuple(sorted({int(v) for v in values}))
    except (TypeError, ValueError):
        raise ParamError(f"expected MIDI note numbers, not {excerpt(values)}") from None
    if any(not 0 <= n <= 127 for n in notes):
        raise ParamError(f"MIDI note numbers are 0..127, not {excerpt(values)}")
    return notes


def _pitch_classes(values: tuple) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(v) % 12 for v in values}))
    except (TypeError, ValueError):
        raise ParamError(f"expected pitch classes 0..11, not {excerpt(values)}") from None


def _units(values: tuple) -> tuple[int, ...]:
    try:
        units = tuple(int(v) for v in values)
    except (TypeError, ValueError, OverflowError):  # int(inf) overflows
        raise ParamError(f"expected unit numbers, not {excerpt(values)}") from None
    if any(u < 0 for u in units):
        raise ParamError("unit numbers start at 0")
    return units


SCALES: dict[str, tuple[int, ...]] = {
    "none": (),
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "major-pentatonic": (0, 2, 4, 7, 9),
    "minor-pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole-tone": (0, 2, 4, 6, 8, 10),
    "custom": (),  # use bias.pitch_classes
}

STIMULATION_SOURCES = ("random-pitch-class", "keys", "token")
NEXT_METERS = ("auto", *vocab.METERS)
NEXT_MODES = ("auto", *vocab.MODES)

INSTRUMENT_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("temperature", "float", 1.0, 0.0, 4.0, "", 30, doc="sampling temperature; 0 = always the likeliest token"),
    ParamSpec("stimulation.weight", "float", 0.0, 0.0, 1.0, "", 30, doc="weight on the forced tokens; the sampled token gets 1 - weight"),
    ParamSpec("stimulation.source", "choice", "random-pitch-class", choices=STIMULATION_SOURCES,
              doc="what is forced: a random pitch class each step (the seed), the keys held on a MIDI keyboard, or one token"),
    ParamSpec("stimulation.token", "text", "C", doc="the token forced when the source is 'token'", validate=_vocab_token),
    ParamSpec("stimulation.keys", "list", (), doc="MIDI notes held on the keyboard (set by the MIDI input)", validate=_midi_notes),
    ParamSpec("ablation.layer", "int", 3, 1, 3, "", doc="LSTM layer whose units are cut (1 = nearest the input)"),
    ParamSpec("ablation.set", "text", "random", doc="unit order that depth sweeps: 'random' or a set installed beside the model, e.g. 'periodic' (its bar-periodic units)"),
    ParamSpec("ablation.depth", "float", 0.0, 0.0, 1.0, "", 0, doc="fraction of the ordered unit set that is cut"),
    ParamSpec("ablation.mode", "choice", "output", choices=("output", "silence"), doc="cut outgoing connections, or hold h at zero"),
    ParamSpec("ablation.units", "list", (), doc="extra units always cut on the ablation layer", validate=_units),
    ParamSpec("bias.scale", "choice", "none", choices=tuple(SCALES), doc="scale lock: pitches outside it are pushed down by bias.strength"),
    ParamSpec("bias.pitch_classes", "list", (), doc="pitch classes 0..11 (C = 0) of the 'custom' scale", validate=_pitch_classes),
    ParamSpec("bias.strength", "float", 0.0, 0.0, 20.0, "logit", 30, doc="how hard the scale lock pushes (20 = hard lock)"),
    ParamSpec("bias.rests", "float", 0.0, -10.0, 10.0, "logit", 30, doc="more (+) or fewer (-) rests"),
    ParamSpec("bias.triplets", "float", 0.0, -10.0, 10.0, "logit", 30, doc="more (+) or fewer (-) triplets"),
    ParamSpec("bias.long_notes", "float", 0.0, -10.0, 10.0, "logit", 30, doc="more (+) or fewer (-) lengthened notes"),
    ParamSpec("bias.short_notes", "float", 0.0, -10.0, 10.0, "logit", 30, doc="more (+) or fewer (-) shortened notes"),
    ParamSpec("bias.end", "float", 0.0, -20.0, 20.0, "logit", 0, doc="end tunes sooner (+) or later (-)"),
    ParamSpec("guard", "bool", True, doc="mask tokens that cannot follow (the grammar guard)"),
    ParamSpec("tempo", "float", 110.0, 20.0, 320.0, "BPM", 200, doc="beats per minute; the beat follows the meter (dotted quarter in 6/8)"),
    ParamSpec("tempo.clock", "float", 0.0, 0.0, 1000.0, "qpm", doc="an external MIDI clock's tempo (--sync midi-clock), quarter notes per minute; while above 0 it rules instead of tempo"),
    ParamSpec("listen", "choice", "off", choices=("off", "continue", "answer", "along"),
              doc="play with a musician on MIDI in: continue (they play a tune's opening, the instrument "
                  "goes on to its end), answer (each phrase answered with as many bars) or along (they lead, "
                  "the instrument follows a beat behind with its own notes; set off, it takes the tune over)"),
    ParamSpec("listen.click", "bool", False,
              doc="while the musician plays (or is awaited), a click on every beat on MIDI channel 10 (wood blocks; "
                  "the bar's first beat higher) so they can keep to the instrument's clock"),
    ParamSpec("listen.echo", "bool", False,
              doc="while listening, the musician's notes also sound through the instrument (its lead's sound and channel), "
                  "as played, at once"),
    ParamSpec("listen.cohesion", "float", 0.6, 0.0, 1.0, "", 0,
              doc="listen along: how closely the instrument plays the musician's notes: 1 unison, 0 its own line"),
    ParamSpec("listen.key", "text", "auto", validate=_listen_key,
              doc="the musician's key: auto (found from the notes) or a tonic and a mode, e.g. 'D dor', 'G', 'E min'"),
    ParamSpec("listen.end", "trigger", doc="the musician's phrase ends now (a pedal), rather than a beat of silence past a bar line"),
    ParamSpec("sync", "choice", "off", choices=("off", "midi-clock", "link"),
              doc="whose time the music keeps: its own, an external MIDI clock's (--sync midi-clock: the clock's "
                  "port opens at start) or an Ableton Link session's (tempo and bars shared with every peer)"),
    ParamSpec("link.start_stop", "bool", False, doc="with sync link: a peer's Stop silences the music, its Start begins a tune at the next bar"),
    ParamSpec("swing", "float", 0.0, 0.0, 1.0, "", 100, doc="0 straight, 1 triplet swing of eighth pairs"),
    ParamSpec("transpose", "int", 0, -24, 24, "semitones", doc="shift every note"),
    ParamSpec("velocity", "int", 90, 1, 127, "", doc="base MIDI velocity"),
    ParamSpec("accent", "float", 0.35, 0.0, 1.0, "", 50, doc="how much stronger the strong beats are"),
    ParamSpec("dynamics", "float", 1.0, 0.0, 1.5, "", 50, doc="overall loudness, scales the velocity"),
    ParamSpec("articulation", "float", 0.9, 0.1, 1.0, "", 50, doc="sounding fraction of each note's length (legato = 1)"),
    ParamSpec("meter.next", "choice", "auto", choices=NEXT_METERS, doc="meter of the next tune ('auto': the model draws it)"),
    ParamSpec("mode.next", "choice", "auto", choices=NEXT_MODES, doc="mode of the next tune ('auto': the model draws it)"),
    ParamSpec("model.next", "choice", catalog.DEFAULT_NAME, choices=catalog.SHIPPED,
              doc="the model that writes the next tune: session (dance tunes) or songs (the whole corpus); "
                  "loaded in the background, it takes over at the next tune boundary"),
    ParamSpec("channel", "int", 1, 1, 16, "", doc="MIDI channel"),
    ParamSpec("program", "int", 0, 0, 127, "", doc="MIDI program (General MIDI, 0 = piano; none sent when -1)"),
    ParamSpec("gain", "float", 0.0, -40.0, 12.0, "dB", 0,
              doc="the built-in sound's level (FluidSynth's gain, the numpy synth's master level); MIDI out is untouched"),
    ParamSpec("timbre", "choice", DEFAULT_TIMBRE, choices=tuple(GM_TIMBRES), validate=_timbre,
              doc="the built-in sound's instrument (FluidSynth: its General MIDI program, changed live; numpy synth: plucked or bowed, at the start)"),
    ParamSpec("repeats", "choice", "play", choices=("play", "skip"),
              doc="repeated sections: play them as written, or each section once (then every note is newly composed, so a control is heard within one note)"),
    ParamSpec("hold", "bool", False, doc="freeze: loop the last bar, the model waits"),
    # the lead's own (voice 1 of every ensemble; the other voices' are voice_specs')
    ParamSpec("voice.1.pan", "float", 0.0, -1.0, 1.0, "", 0, doc="lead (voice 1): left (-1) to right (1): MIDI CC 10"),
    ParamSpec("voice.1.mute", "bool", False, doc="lead (voice 1): silence it (it keeps writing the tune)"),
    ParamSpec("tune.new", "trigger", doc="end this tune at the next note and start a new one"),
    ParamSpec("panic", "trigger", doc="silence everything now (all notes off)"),
)


# -- voices ---------------------------------------------------------------------------------------

ROLES = ("lead", "follow", "chords", "drone")
# What each role of voice 2 and on may be steered by: the network's controls for a follower
# (its rhythm and bar lines are the lead's, so only the pitch bias applies), and the sound of
# every voice. The lead's are the unnumbered parameters.
FOLLOW_NETWORK = ("temperature", "stimulation.weight", "stimulation.source", "stimulation.token",
                  "ablation.layer", "ablation.set", "ablation.depth", "ablation.mode", "ablation.units",
                  "bias.scale", "bias.pitch_classes", "bias.strength")
SOUND = ("timbre", "velocity", "dynamics")
VOICE_OWN: dict[str, ParamSpec] = {s.name: s for s in (
    ParamSpec("cohesion", "float", 0.6, 0.0, 1.0, "", 0,
              doc="how closely it plays the lead's notes: 1 unison, 0 its own line over the lead's rhythm"),
    ParamSpec("pan", "float", 0.0, -1.0, 1.0, "", 0, doc="left (-1) to right (1): MIDI CC 10"),
    ParamSpec("mute", "bool", False, doc="silence this voice (it keeps its place in the music)"),
)}
ROLE_PARAMS: dict[str, tuple[str, ...]] = {
    "lead": (),  # its are INSTRUMENT_PARAMS', voice.1.pan and voice.1.mute among them
    "follow": ("cohesion", *FOLLOW_NETWORK, *SOUND, "pan", "mute"),
    "chords": (*SOUND, "pan", "mute"),
    "drone": (*SOUND, "pan", "mute"),
}
# The lead's unnumbered parameters that voice.1.X names too (everything of one voice).
LEAD_ALIASED = frozenset(("temperature", "guard", "stimulation.keys", "bias.rests", "bias.triplets", "bias.long_notes",
                          "bias.short_notes", "bias.end", "channel", "program", *FOLLOW_NETWORK, *SOUND))


def voice_of(name: str) -> tuple[int, str]:
    """(voice number, the parameter's name within the voice): ``voice.2.temperature`` -> (2,
    'temperature'); an unnumbered name is the lead's, (1, name)."""
    if name.startswith("voice."):
        number, _, base = name[6:].partition(".")
        if number.isdigit() and base:
            return int(number), base
    return 1, name


def lead_aliases(names: Iterable[str]) -> dict[str, str]:
    """``voice.1.X`` -> ``X`` for each of the lead's parameters among ``names``."""
    return {f"voice.1.{name}": name for name in names if name in LEAD_ALIASED}


def voice_specs(voices: Iterable[tuple[int, str]], specs: Iterable[ParamSpec] = INSTRUMENT_PARAMS) -> tuple[ParamSpec, ...]:
    """The parameters of an ensemble's voices, ``voice.N.X``, from (number, role) pairs: what the
    role takes (``ROLE_PARAMS``), each with the range of the lead's (``specs``, e.g. fitted to the
    model) or its own (``VOICE_OWN``); the lead gets only what it has no unnumbered name for."""
    base = {s.name: s for s in specs}
    out = []
    for number, role in voices:
        if role not in ROLE_PARAMS:
            raise ValueError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
        for name in ROLE_PARAMS[role]:
            spec = VOICE_OWN.get(name) or base[name]
            out.append(replace(spec, name=f"voice.{number}.{name}", doc=f"{role} (voice {number}): {spec.doc}"))
    return tuple(out)


def params_for_models(names: Iterable[str], playing: str) -> tuple[ParamSpec, ...]:
    """The instrument's parameters with ``model.next`` choosing among ``names`` (the shipped
    models, and the one given by path when a performance starts with ``--model PATH``), its
    default the model that plays first."""
    names = tuple(names)
    return tuple(replace(s, choices=names, default=playing) if s.name == "model.next" else s for s in INSTRUMENT_PARAMS)
