"""The one place where a control value becomes a parameter value, and where actions happen.

OSC, MIDI and the Myo all reduce what they receive to a source key and a normalised value
0..1 (a fader, a knob, an arm angle, a muscle's intensity) or a momentary event (a pose, a
note, a button). The ``Router`` looks the key up in the current patch and calls
``Parameters.set``/``fire``: controllers never compute parameter values themselves.

Source keys (tuples, built by the controllers and by ``patch.py``):
``("osc", address, arg)``, ``("cc", channel or None, number)``, ``("pitchbend", channel or None)``,
``("note", channel or None, number)``, ``("myo", "yaw"|"pitch"|"roll"|"emg"|"emg.N")``,
``("pose", name)``. A channel of None in a patch means any channel.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from instrument.live.params import ParamError, Parameters, ParamSpec

if TYPE_CHECKING:
    from controllers.patch import Patch
    from controllers.report import Reporter

CURVES = ("linear", "exponential", "logarithmic")
CURVE_K = 3.0  # steepness of the exponential/logarithmic curves (e^3 = 20: the lower half of the
# travel covers about 18 % of the range with 'exponential', the fine end where ears are sensitive)
MAPPABLE_KINDS = ("float", "int", "bool", "choice")
ACTION_KINDS = ("fire", "toggle", "set", "step")
TAKEOVERS = ("jump", "pickup")
PICKUP_TOLERANCE = 0.02  # of the mapping's range: close enough to take over without crossing


def curve(x: float, shape: str) -> float:
    """``x`` in 0..1 through a curve; 0 and 1 stay put."""
    if shape == "exponential":
        return math.expm1(CURVE_K * x) / math.expm1(CURVE_K)
    if shape == "logarithmic":
        return math.log1p(x * math.expm1(CURVE_K)) / CURVE_K
    return x


def default_range(spec: ParamSpec) -> tuple[float, float]:
    """The whole of a parameter's range: its min..max, or the indices of its choices, or 0..1."""
    if spec.kind == "choice":
        return 0.0, float(len(spec.choices) - 1)
    if spec.kind == "bool":
        return 0.0, 1.0
    return float(spec.minimum), float(spec.maximum)


@dataclass(frozen=True)
class Mapping:
    """A continuous control: source value 0..1 -> ``target`` over ``lo..hi`` through a curve."""

    source: tuple
    target: str
    lo: float
    hi: float
    curve: str = "linear"
    invert: bool = False
    smoothing_ms: float | None = None
    input_lo: float = 0.0  # the source's raw values that mean 0 and 1 (e.g. 0 and 127, or an
    input_hi: float = 1.0  # EMG intensity's useful 0.05..0.6)
    takeover: str = "jump"  # 'pickup': after another control moved the parameter, wait until
    # this control's value crosses the parameter's (no jump back when an arm sweeps after a step)
    where: str = ""  # FILE:LINE, for messages

    def value(self, raw: float, spec: ParamSpec) -> Any:
        """The parameter value for the raw source value ``raw`` (clamped into the input range)."""
        span = self.input_hi - self.input_lo
        x = (raw - self.input_lo) / span if span else 0.0
        x = min(max(x, 0.0), 1.0)
        if self.invert:
            x = 1.0 - x
        if spec.kind == "bool":
            return x >= 0.5
        y = self.lo + (self.hi - self.lo) * curve(x, self.curve)
        return int(round(y)) if spec.kind in ("int", "choice") else y  # a choice by its index

    def describe(self) -> str:
        return f"{source_label(self.source)} -> {self.target}"


@dataclass(frozen=True)
class Action:
    """A momentary control: a press of ``source`` fires a trigger, toggles a bool, sets a value
    or steps a number by ``value``. Level sources (a CC, an OSC fader) press when they rise
    through ``threshold``."""

    source: tuple
    kind: str
    target: str
    value: Any = None
    threshold: float = 0.5
    where: str = ""

    def describe(self) -> str:
        if self.kind == "set":
            what = f"set {self.target} = {self.value!r}"
        elif self.kind == "step":
            what = f"step {self.target} by {self.value:+g}"
        else:
            what = f"{self.kind} {self.target}"
        return f"{source_label(self.source)} -> {what}"


def source_label(key: tuple) -> str:
    """A short human name for a source key: 'CC 7 ch 1', 'OSC /1/fader1', 'Myo pitch', 'pose fist'."""
    kind = key[0]
    channel = lambda c: "" if c is None else f" ch {c}"  # noqa: E731
    if kind == "osc":
        return f"OSC {key[1]}" + (f"[{key[2]}]" if key[2] else "")
    if kind == "cc":
        return f"CC {key[2]}{channel(key[1])}"
    if kind == "pitchbend":
        return f"pitch bend{channel(key[1])}"
    if kind == "note":
        return f"note {key[2]}{channel(key[1])}"
    if kind == "myo":
        return f"Myo {key[1]}"
    if kind == "pose":
        return f"pose {key[1]}"
    return " ".join(map(str, key))


def _candidates(key: tuple) -> tuple[tuple, ...]:
    """The key, and for channel messages the same key on any channel (a patch's omni entry)."""
    if key[0] in ("cc", "pitchbend", "note") and key[1] is not None:
        return key, (key[0], None, *key[2:])
    return (key,)


def set_value(params: Parameters, name: str, value: Any, origin: str, reporter: "Reporter",
              smoothing_ms: float | None = None) -> Any:
    """``params.set`` (where the value is checked) with the clamp warning and refused input
    going through the reporter's rate-limited log instead of one log line per message. Returns
    the value taken, or None."""
    try:
        return params.set(name, value, source=origin, smoothing_ms=smoothing_ms, warn=reporter.warn)
    except ParamError as error:
        reporter.ignore(f"{error} (from {origin})")
        return None


def fire(params: Parameters, name: str, origin: str, reporter: "Reporter") -> bool:
    try:
        params.fire(name, source=origin)
        return True
    except ParamError as error:
        reporter.ignore(f"{error} (from {origin})")
        return False


def perform(params: Parameters, action: Action, origin: str, reporter: "Reporter") -> None:
    """Carry out one action now."""
    name = action.target
    if action.kind == "fire":
        if fire(params, name, origin, reporter):
            reporter.did(f"{action.describe()}")
        return
    if action.kind == "toggle":
        value = not bool(params.target(name))
    elif action.kind == "set":
        value = action.value
    else:  # step, kept inside the range so a held gesture does not log a clamp per step
        spec = params.specs[name]
        value = params.target(name) + action.value
        value = min(max(value, spec.minimum), spec.maximum)
    taken = set_value(params, name, value, origin, reporter)
    if taken is not None:
        reporter.did(f"{source_label(action.source)}: {name} = {_show(taken)}")


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class Router:
    """The current patch's mappings and actions (and MIDI-learned mappings), applied to a
    ``Parameters``. ``swap`` replaces the patch in one assignment: a hot reload never leaves
    a controller thread half-way between two patches."""

    def __init__(self, params: Parameters, patch: "Patch"):
        self.params = params
        self.patch = patch
        self.learned: dict[tuple, Mapping] = {}  # from MIDI learn; survives reloads
        self._above: dict[tuple, bool] = {}  # level sources of actions: above threshold now?
        self._sent: dict[tuple, Any] = {}  # pickup mappings: the value each last set
        self._wanted: dict[tuple, float] = {}  # pickup mappings: the value each last asked for
        self._lock = threading.Lock()  # serialises edge state between controller threads

    def swap(self, patch: "Patch") -> None:
        self.patch = patch

    def learn(self, mapping: Mapping) -> None:
        self.learned = {**self.learned, mapping.source: mapping}

    def handles(self, key: tuple) -> bool:
        patch = self.patch
        return any(k in patch.mappings or k in patch.actions or k in self.learned for k in _candidates(key))

    def route(self, key: tuple, raw: float | None, origin: str, reporter: "Reporter") -> bool:
        """Apply everything the patch maps from ``key``: mappings take ``raw``; actions happen
        when ``raw`` is None (a momentary event) or rises through their threshold.
        Returns whether anything in the patch listens to ``key``."""
        patch, learned = self.patch, self.learned
        matched = False
        keys = _candidates(key)
        relearned = [learned[k] for k in keys if k in learned]  # a learned knob leaves the patch's mapping
        for k in keys:
            if relearned:
                mappings = relearned if k == key else ()
            else:
                mappings = patch.mappings.get(k, ())
            for mapping in mappings:
                matched = True
                if raw is not None:
                    self._apply(mapping, raw, origin, reporter)
            for action in patch.actions.get(k, ()):
                matched = True
                if self._pressed(action, key, raw):
                    perform(self.params, action, origin, reporter)
        return matched

    def _apply(self, mapping: Mapping, raw: float, origin: str, reporter: "Reporter") -> None:
        spec = self.params.specs[mapping.target]
        try:
            value = mapping.value(float(raw), spec)
        except (TypeError, ValueError, OverflowError):
            reporter.ignore(f"{source_label(mapping.source)}: not a number: {raw!r}")
            return
        if mapping.takeover == "pickup" and not self._picked_up(mapping, value):
            return
        taken = set_value(self.params, mapping.target, value, origin, reporter, mapping.smoothing_ms)
        if taken is not None:
            if mapping.takeover == "pickup":
                self._sent[(mapping.source, mapping.target)] = taken
            reporter.did(f"{source_label(mapping.source)} -> {mapping.target} {_show(taken)}", key=mapping.source)

    def _picked_up(self, mapping: Mapping, value: Any) -> bool:
        """Whether a pickup mapping controls its parameter: it set it last (or never set it),
        or its value has now crossed (or come within a hair of) the value another control left."""
        key = (mapping.source, mapping.target)
        current = self.params.target(mapping.target)
        sent = self._sent.get(key)
        previous, self._wanted[key] = self._wanted.get(key), float(value)
        if sent is None or current == sent:
            return True
        if abs(value - current) <= PICKUP_TOLERANCE * abs(mapping.hi - mapping.lo):
            return True
        return previous is not None and (previous - current) * (value - current) <= 0

    def _pressed(self, action: Action, key: tuple, raw: float | None) -> bool:
        if raw is None:
            return True
        try:
            above = float(raw) >= action.threshold
        except (TypeError, ValueError):
            return False
        state = (key, action.where)
        with self._lock:
            was = self._above.get(state, False)
            self._above[state] = above
        return above and not was
