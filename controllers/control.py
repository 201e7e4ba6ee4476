"""The one place where a controller's value enters the parameters: ``set_value`` and ``fire``.

OSC, MIDI, the web page and gestures all call these, whether a patch mapped the value first
(``controllers.router``) or the controller names the parameter itself (``/temperature 0.7``):
the value is checked by ``Parameters.set``, and a clamp or a refusal goes through the
controller's rate-limited reporter instead of one log line per message.
"""

from __future__ import annotations

from typing import Any

from controllers.report import Reporter
from instrument.live.params import ParamError, Parameters


def set_value(params: Parameters, name: str, value: Any, origin: str, reporter: Reporter,
              smoothing_ms: float | None = None) -> Any:
    """``params.set`` (where the value is checked) with the clamp warning and refused input
    going through the reporter's rate-limited log instead of one log line per message. Returns
    the value taken, or None."""
    try:
        return params.set(name, value, source=origin, smoothing_ms=smoothing_ms, warn=reporter.warn)
    except ParamError as error:
        reporter.ignore(f"{error} (from {origin})")
        return None


def fire(params: Parameters, name: str, origin: str, reporter: Reporter) -> bool:
    """``params.fire``; an unknown trigger is reported (rate-limited) and False returned."""
    try:
        params.fire(name, source=origin)
        return True
    except ParamError as error:
        reporter.ignore(f"{error} (from {origin})")
        return False
