"""What a patch maps: a source to a parameter (``Mapping``: range, curve, pickup) or to an action.

OSC, MIDI and the Myo all reduce what they receive to a source key and a normalised value
0..1 (a fader, a knob, an arm angle, a muscle's intensity) or a momentary event (a pose, a
note, a button). A ``Mapping`` turns such a value into a parameter value; the router
(``controllers.router``) looks the key up in the current patch and applies it.

Source keys (tuples, built by the controllers and by ``patch.py``):
``("osc", address, arg)``, ``("cc", channel or None, number)``, ``("pitchbend", channel or None)``,
``("note", channel or None, number)``, ``("myo", "yaw"|"pitch"|"roll"|"emg"|"emg.N")``,
``("pose", name)``. A channel of None in a patch means any channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from instrument.live.params import ParamSpec

CURVES = ("linear", "exponential", "logarithmic")
CURVE_K = 3.0  # steepness of the exponential/logarithmic curves (e^3 = 20: the lower half of the
# travel covers about 18 % of the range with 'exponential', the fine end where ears are sensitive)
MAPPABLE_KINDS = ("float", "int", "bool", "choice")
ACTION_KINDS = ("fire", "toggle", "set", "step")
TAKEOVERS = ("jump", "pickup")


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
