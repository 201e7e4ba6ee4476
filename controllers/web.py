"""The web page as a controller: its sliders, switches, menus and buttons, and its XY pad.

The page sends JSON messages over its WebSocket (``instrument/web/server.py`` carries them here):

    {"op": "set", "name": "temperature", "value": 0.7}    a control of one parameter
    {"op": "fire", "name": "tune.new"}                    a button (a trigger)
    {"op": "pad", "touches": [[x, y], [x2, y2]]}          the fingers on the XY pad, 0..1, y up,
                                                          in the order they landed ([] = lifted)

A control of one parameter sets it as OSC's own address for it does (``mapping.set_value``:
``Parameters.set`` checks the value, the one check every controller's value gets; the clamp and
bad values reported, never raised); the pad is a controller like a MIDI knob or the
Myo: the patch maps its sources (``{web: x}``, ``{web: y}``, ``x2``, ``y2``; ``touch``, ``touch2``
for actions) through the same ``Router``, takeover rules included. Anything else, from a bug
to a hostile page, is counted and logged (rate-limited) and ignored.
"""

from __future__ import annotations

import json
import math
from typing import Any

from controllers.control import fire, set_value
from controllers.router import Router
from controllers.patch import WEB_CONTROLS, WEB_PRESSES
from controllers.report import Reporter
from instrument.live.params import Parameters

MAX_TOUCHES = 2


class WebControl:
    """Messages from the pages -> parameters (see the module docstring). Thread-safe as the
    other controllers are: ``Parameters`` and the ``Router`` serialise their writers."""

    def __init__(self, params: Parameters | None, router: Router | None, reporter: Reporter | None = None):
        """``params`` None: a page that controls nothing (a recording's page)."""
        self.params, self.router = params, router
        self.reporter = reporter or Reporter("Web")
        self._touching = 0

    def status(self) -> str:
        return f"Web control {self.reporter.counts()}"

    def refuse(self, why: str) -> None:
        self.reporter.got()
        self.reporter.ignore(why)

    def receive(self, data: str | bytes, client: str, allowed: bool) -> None:
        reporter = self.reporter
        reporter.got()
        if self.params is None:
            reporter.ignore(f"{client}: this page controls nothing (a recording)")
            return
        if not allowed:
            reporter.ignore(f"{client}: control needs the token printed at start (open the page with ?token=...)")
            return
        if not isinstance(data, str):
            reporter.ignore(f"{client}: binary message of {len(data)} bytes (the page sends JSON text)")
            return
        try:
            message = json.loads(data)
        except ValueError as error:
            reporter.ignore(f"{client}: not JSON ({str(error)[:60]})")
            return
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            reporter.ignore(f"{client}: expected an object with an 'op', not {data[:60]!r}")
            return
        op = message["op"]
        origin = "web" if client.startswith(("127.", "::1")) else f"web {client}"
        if op == "set":
            self._set(message, origin)
        elif op == "fire":
            name = message.get("name")
            if not isinstance(name, str):
                reporter.ignore(f"{client}: fire needs a parameter name")
            elif fire(self.params, name, origin, reporter):
                reporter.did(f"fire {name}")
        elif op == "pad":
            self._pad(message.get("touches"), origin, client)
        else:
            reporter.ignore(f"{client}: unknown op {op[:30]!r} (set, fire, pad)")

    def _set(self, message: dict, origin: str) -> None:
        """The value is checked once, where every controller's is (``Parameters.set``)."""
        name = message.get("name")
        if not isinstance(name, str) or "value" not in message:
            self.reporter.ignore(f"{origin}: set needs a parameter name and a value")
            return
        taken = set_value(self.params, name, message["value"], origin, self.reporter)
        if taken is not None:
            self.reporter.did(f"{name} {taken:.3g}" if isinstance(taken, float) else f"{name} {taken}", key=("web", name))

    def _pad(self, touches: Any, origin: str, client: str) -> None:
        if not isinstance(touches, list) or len(touches) > 10:
            self.reporter.ignore(f"{client}: pad takes a list of [x, y] touches")
            return
        points = []
        for touch in touches[:MAX_TOUCHES]:
            if (not isinstance(touch, list) or len(touch) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in touch)):
                self.reporter.ignore(f"{client}: a pad touch is [x, y] with numbers 0..1, not {str(touch)[:40]}")
                return
            points.append((min(max(float(touch[0]), 0.0), 1.0), min(max(float(touch[1]), 0.0), 1.0)))
        router = self.router
        label = f"{origin} pad"
        for i, (x, y) in enumerate(points):
            for name, value in zip(WEB_CONTROLS[2 * i: 2 * i + 2], (x, y)):
                router.route(("web", name), value, label, self.reporter)
        for i, name in enumerate(WEB_PRESSES):  # a finger landing presses, lifting releases
            router.route(("web", name), 1.0 if i < len(points) else 0.0, label, self.reporter)


def pad_labels(router: Router) -> dict[str, str]:
    """What the current patch maps each pad source to, for the page ('temperature 0.2..2')."""
    patch = router.patch
    labels: dict[str, str] = {}
    for name in WEB_CONTROLS + WEB_PRESSES:
        key = ("web", name)
        parts = [f"{m.target} {m.lo:g}..{m.hi:g}" for m in patch.mappings.get(key, ())]
        parts += [a.describe().split(" -> ", 1)[1] for a in patch.actions.get(key, ())]
        if parts:
            labels[name] = ", ".join(parts)
    return labels

