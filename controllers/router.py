"""The current patch applied: a source key and its value to the parameters, through the patch's
mappings and actions (and MIDI-learned mappings).

Controllers never compute parameter values themselves: they hand a source key and a raw value
here, and the router applies what the patch says (``controllers.mapping``) through
``controllers.control``.
"""

from __future__ import annotations

import threading
from typing import Any

from controllers.control import fire, set_value
from controllers.mapping import Action, Mapping, source_label
from controllers.patch import Patch
from controllers.report import Reporter
from instrument.live.params import Parameters

PICKUP_TOLERANCE = 0.02  # of the mapping's range: close enough to take over without crossing


def _candidates(key: tuple) -> tuple[tuple, ...]:
    """The key, and for channel messages the same key on any channel (a patch's omni entry)."""
    if key[0] in ("cc", "pitchbend", "note") and key[1] is not None:
        return key, (key[0], None, *key[2:])
    return (key,)


def perform(params: Parameters, action: Action, origin: str, reporter: Reporter) -> None:
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

    def __init__(self, params: Parameters, patch: Patch):
        self.params = params
        self.patch = patch
        self.learned: dict[tuple, Mapping] = {}  # from MIDI learn; survives reloads
        self._above: dict[tuple, bool] = {}  # level sources of actions: above threshold now?
        self._sent: dict[tuple, Any] = {}  # pickup mappings: the value each last set
        self._wanted: dict[tuple, float] = {}  # pickup mappings: the value each last asked for
        self._lock = threading.Lock()  # serialises edge state between controller threads
        self._sources_cache: tuple | None = None  # (patch, learned, their mapped and momentary sources)

    def swap(self, patch: Patch) -> None:
        self.patch = patch

    def learn(self, mapping: Mapping) -> None:
        self.learned = {**self.learned, mapping.source: mapping}

    def handles(self, key: tuple) -> bool:
        patch = self.patch
        return any(k in patch.mappings or k in patch.actions or k in self.learned for k in _candidates(key))

    def listens(self, source: tuple) -> bool:
        """Whether a mapping or an action of the patch (or MIDI learn) takes ``source``: a whole key,
        or its first fields (``("osc", "/xy")`` for every argument of /xy)."""
        mapped, momentary = self._sources()
        return any(k in mapped or k in momentary for k in _candidates(source))

    def momentary(self, source: tuple) -> bool:
        """Whether an action takes ``source`` (a key or its first fields): an action counts every
        press and every crossing of its threshold, so none of its messages may be dropped."""
        momentary = self._sources()[1]
        return any(k in momentary for k in _candidates(source))

    def _sources(self) -> tuple[frozenset, frozenset]:
        """Every key of the mappings (learned ones too) and of the actions, with all their prefixes
        (made again when the patch or what was learned changes; replaced in one assignment)."""
        patch, learned = self.patch, self.learned
        cache = self._sources_cache
        if cache is None or cache[0] is not patch or cache[1] is not learned:
            def prefixes(keys) -> frozenset:
                return frozenset(k[:i] for k in keys for i in range(1, len(k) + 1))
            cache = self._sources_cache = (patch, learned, prefixes([*patch.mappings, *learned]), prefixes(patch.actions))
        return cache[2], cache[3]

    def route(self, key: tuple, raw: float | None, origin: str, reporter: Reporter) -> bool:
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

    def _apply(self, mapping: Mapping, raw: float, origin: str, reporter: Reporter) -> None:
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
