"""The one place where a controller's value enters the parameters: ``set_value`` and ``fire``,
and ``Latest``, which lets only the latest of a flood through.

OSC, MIDI, the web page and gestures all call these, whether a patch mapped the value first
(``controllers.router``) or the controller names the parameter itself (``/temperature 0.7``):
the value is checked by ``Parameters.set``, and a clamp or a refusal goes through the
controller's rate-limited reporter instead of one log line per message.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

from controllers.report import Reporter
from instrument.errors import excerpt
from instrument.live.params import ParamError, Parameters

# A controller's thread reads what has arrived at most this often under a flood (a 256-frame audio
# block at 48 kHz is 5.3 ms): a fader that sends 2,000 messages a second moves its parameter once
# a batch, and a lone message is still taken at once.
BATCH_S = 0.005


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


class Latest:
    """The latest value from each source (an OSC address, a MIDI knob) within one batch of what a
    controller's thread has read: ``keep`` replaces what the same source sent before (counted as
    superseded, never applied), ``flush`` applies what is kept, once each, in the order the sources
    last moved. Superseded values never reach the parameters, their listeners or the synth.
    Used by one thread (the controller's own): no lock."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self._kept: dict[Hashable, tuple[str, Callable[[], None]]] = {}

    def keep(self, source: Hashable, what: str, apply: Callable[[], None]) -> None:
        """Keep ``apply`` (which applies the value; ``what`` names it if it fails) for ``source``."""
        if self._kept.pop(source, None) is not None:
            self.reporter.superseded += 1
        self._kept[source] = (what, apply)

    def flush(self) -> None:
        """Apply what is kept; a failure is reported (rate-limited) and the rest still applied."""
        kept, self._kept = self._kept, {}
        for what, apply in kept.values():
            try:
                apply()
            except Exception as error:  # a bug or a bad value must not stop the controller
                self.reporter.ignore(f"{excerpt(what, 60)}: {type(error).__name__}: {excerpt(error)}")
