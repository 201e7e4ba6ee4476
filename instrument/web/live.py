"""What the web page shows of a live performance, read the way the terminal view reads it.

Everything here runs on the web server's thread and only reads what the engine publishes
without waiting: the parameters' lock-free values, the tune being written (``composer.tune``, a
list the model thread appends to), the notes it placed (``engine.placed``, a deque), the
network's activity (a deque the ``ActivityTap`` fills) and the ablation the model thread set
(``composer.controls.ablation``, replaced in one assignment). Nothing is locked and nothing is
called back into the engine, so drawing a page can never delay a note.

The source keeps a mirror of what it sent: ``poll`` adds what changed to the mirror and
returns it (a delta), ``snapshot`` returns the mirror, so a page that joins late and a page
that saw every delta show the same thing.
"""

from __future__ import annotations

import base64
import time
from collections import deque
from typing import Any, Callable, Sequence

from instrument.live.performance import Performance, lookahead_ms
from instrument.timing import clock
from instrument.live.view import onset_p99_ms
from instrument.model import vocab
from instrument.music.band import accompaniment_pieces, voice_header
from instrument.music.tunes import AbcWriter, Tune
from instrument.outputs.recording import tune_title

NOTES_KEPT = 600  # notes a page can draw (the piano roll's last bars and the highlights)
COLUMNS_KEPT = 360  # heatmap columns (12 s at 30 a second)
TUNES_KEPT = 3
HEAD_EVERY_S = 0.5  # the header line and the status lines, at most this often
ACCOMPANIMENT_EVERY_S = 1.0  # a chords or drone voice's score, written again at most this often (the lead's comes as it is written)

Lines = Callable[[], Sequence[str]]


def param_specs(params) -> list[dict[str, Any]]:
    """Every live parameter as the page draws its control: kind, range, step, choices, doc."""
    out = []
    for spec in params.specs.values():
        item: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "unit": spec.unit, "doc": spec.doc}
        if spec.kind in ("float", "int"):
            item.update(min=spec.minimum, max=spec.maximum,
                        step=1 if spec.kind == "int" else (spec.maximum - spec.minimum) / 1000.0)
        if spec.kind == "choice":
            item["choices"] = list(spec.choices)
        out.append(item)
    return out


def tune_header(number: int, meter: str, mode: str) -> str:
    """The ABC header of a tune as recordings write it; the body follows on the next line."""
    return Tune(meter, mode, []).to_abc(number, title=tune_title(number)).rstrip("\n") + "\n"


def jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class LiveSource:
    """The page's view of one ``Performance`` (see the module docstring)."""

    def __init__(self, performance: Performance, activity: deque | None = None, status: Lines = lambda: (),
                 controller_activity: Lines = lambda: (), pads: Callable[[], dict] = dict, model_name: str = "",
                 layers: int = 0, hidden: int = 0):
        """``activity``: a deque an ``ActivityTap(units=True)`` publishes into (``tap.subscribe()``);
        ``pads``: what the patch maps the XY pad to (labels for the page)."""
        self.p = performance
        self.params = performance.params
        self.activity = activity
        self.status, self.controller_activity, self.pads = status, controller_activity, pads
        self.model_name, self.layers, self.hidden = model_name, layers, hidden
        self._values: dict[str, Any] = {}
        self._sources: dict[str, str] = {}
        self._version = -1
        self._tunes: dict[int, dict[str, Any]] = {}
        self._writers: dict[int, AbcWriter] = {}  # each mirrored tune's ABC, written as its tokens come
        self._tune_state = None  # the composer's TuneState being mirrored
        self._notes: deque[dict] = deque(maxlen=NOTES_KEPT)
        self._next_note = 0
        self._max_version = -1
        self._columns: deque[dict] = deque(maxlen=COLUMNS_KEPT)
        self._ablation: dict[str, Any] = {"layer": 0, "units": [], "mode": "output"}
        self._ablation_seen = None
        self._head: dict[str, Any] = {}
        self._lines: list[str] = []
        self._head_at = 0.0
        self._changes: deque[tuple[int, str, str]] = deque(maxlen=256)  # (version, name, source)
        self._fired_by: dict[str, str] = {}
        ensemble = performance.composer.ensemble
        self._ensemble = ensemble
        self._voices = [{"voice": v.number, "role": v.role, "name": v.name, "channel": v.channel,
                         "timbre": v.param("timbre")} for v in ensemble.voices]
        self._written_at: dict[tuple[int, int], tuple[float, int]] = {}  # (tune, voice) -> (when, notes) its score was written
        self._voice_writers: dict[tuple[int, int], AbcWriter] = {}  # (tune, follower) -> its part's ABC as it comes
        self.params.listeners.append(self._changed)

    def close(self) -> None:
        if self._changed in self.params.listeners:
            self.params.listeners.remove(self._changed)

    def _changed(self, change) -> None:
        """A parameter moved (in the controller's thread): remember who moved it, for the notes it changes."""
        self._changes.append((self.params.version, change.name, change.source))
        if change.value == "fired":
            self._fired_by[change.name] = change.source

    # -- the Source protocol --------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        return {"mode": "live", "model": self.model_name, "layers": self.layers, "hidden": self.hidden,
                "params": param_specs(self.params), "max_rate": 30, "voices": self._voices}

    def snapshot(self) -> dict[str, Any]:
        return {"t": clock(), "values": dict(self._values), "sources": dict(self._sources),
                "tunes": [dict(t, pieces=list(t["pieces"]), start=0,
                               voices=[{"voice": v["voice"], "role": v["role"], "header": v["header"], "start": 0,
                                        "pieces": list(v["pieces"]), "places": v["places"]} for v in t.get("voices", {}).values()])
                          for t in self._tunes.values()],
                "notes": list(self._notes), "activity": list(self._columns), "ablation": self._ablation,
                "head": self._head, "status": self._lines}

    def poll(self) -> dict[str, Any] | None:
        delta: dict[str, Any] = {}
        self._poll_values(delta)
        self._poll_tune(delta)
        self._poll_notes(delta)
        self._poll_activity(delta)
        self._poll_ablation(delta)
        self._poll_head(delta)
        if not delta:
            return None
        delta["type"] = "delta"
        delta["t"] = clock()
        return delta

    # -- parts ----------------------------------------------------------------------------------
    def _poll_values(self, delta: dict) -> None:
        params = self.params
        version = params.version
        if version == self._version:
            return
        self._version = version
        values = {name: jsonable(value) for name, value in params.snapshot().items()}
        sources = {name: (self._fired_by.get(name, "") if spec.kind == "trigger" else params.source(name))
                   for name, spec in params.specs.items()}
        changed = {k: v for k, v in values.items() if self._values.get(k, None) != v or k not in self._values}
        moved = {k: v for k, v in sources.items() if self._sources.get(k) != v}
        self._values.update(changed)
        self._sources.update(moved)
        if changed:
            delta["values"] = changed
        if moved:
            delta["sources"] = moved

    def _poll_tune(self, delta: dict) -> None:
        state = self.p.composer.tune
        parts = []
        if state is not self._tune_state and self._tune_state is not None:
            part = self._read_tune(self._tune_state)  # the rest of the tune that just ended
            if part:
                parts.append(part)
        if state is not None and state.meter and state.mode:  # its header is drawn: the tune can be shown
            self._tune_state = state
            part = self._read_tune(state)
            if part:
                parts.append(part)
        if parts:
            delta["tunes"] = parts

    def _read_tune(self, state) -> dict | None:
        tune = self._tunes.get(state.number)
        if tune is None:
            tune = {"number": state.number, "meter": state.meter, "mode": state.mode,
                    "header": tune_header(state.number, state.meter, state.mode), "pieces": [], "ended": False}
            self._tunes[state.number] = tune
            self._writers[state.number] = AbcWriter(state.meter, state.mode)
            while len(self._tunes) > TUNES_KEPT:
                oldest = min(self._tunes)
                del self._tunes[oldest], self._writers[oldest]
                for key in [k for k in (*self._voice_writers, *self._written_at) if k[0] == oldest]:
                    self._voice_writers.pop(key, None)
                    self._written_at.pop(key, None)
            new = True
        else:
            new = False
        start = len(tune["pieces"])
        writer = self._writers[state.number]
        ended = bool(state.ended)
        body = state.body[writer.pushed:]  # the model thread only appends: a slice is a consistent copy
        # a note's pieces come once it is certain (the one being written is not sounding yet)
        pieces = [piece for token in body for piece in writer.pieces(token)]
        if ended and not tune["ended"]:
            pieces += writer.end()
        voices = self._read_voices(state, tune, ended)
        if not pieces and not new and ended == tune["ended"] and not voices:
            return None
        tune["pieces"].extend(pieces)
        tune["ended"] = ended
        part = {"number": state.number, "start": start, "pieces": pieces, "ended": ended}
        if voices:
            part["voices"] = voices
        if new:
            part.update(meter=tune["meter"], mode=tune["mode"], header=tune["header"])
        return part

    def _read_voices(self, state, tune: dict, ended: bool) -> list[dict]:
        """The other voices' parts of a tune that changed: a follower's pieces as they come (as the
        lead's), an accompanist's score written again (at most every ACCOMPANIMENT_EVERY_S, and at
        the tune's end) with the piece each written place begins."""
        out = []
        kept = tune.setdefault("voices", {})
        for v in self._ensemble.voices[1:]:
            mine = kept.get(v.number)
            if mine is None:
                mine = kept[v.number] = {"voice": v.number, "role": v.role, "start": 0, "pieces": [], "places": {},
                                         "header": "\n".join(voice_header(v.number, v.name, v.role, None)) + "\n"}
                fresh = True
            else:
                fresh = False
            if v.role == "follow":  # its tokens as the lead's are written (one piece per token, once certain)
                body = state.bodies.get(v.number, [])
                writer = self._voice_writers.setdefault((state.number, v.number), AbcWriter(state.meter, state.mode))
                start = len(mine["pieces"])
                pieces = [piece for token in body[writer.pushed:] for piece in writer.pieces(token)]
                if ended and not mine.get("final"):
                    pieces += writer.end()
                    mine["final"] = True
                if pieces or fresh:
                    mine["pieces"].extend(pieces)
                    out.append({"voice": v.number, "start": start, "pieces": pieces, **({"header": mine["header"]} if fresh else {})})
                continue
            notes = state.accompaniment.get(v.number, [])
            when, count = self._written_at.get((state.number, v.number), (-1e9, -1))
            now = time.monotonic()
            due = len(notes) != count and now - when >= ACCOMPANIMENT_EVERY_S
            if not (fresh or due or (ended and not mine.get("final"))):
                continue
            self._written_at[(state.number, v.number)] = (now, len(notes))
            lead = Tune(state.meter, state.mode, list(state.body))
            pieces, places = accompaniment_pieces(lead, list(notes), list(state.chords.get(v.number, ())))
            mine.update(pieces=pieces, places={f"{bar}:{offset:g}": index for (bar, offset), index in places.items()},
                        final=ended)
            out.append({"voice": v.number, "start": 0, "pieces": pieces, "places": mine["places"], "header": mine["header"]})
        return out

    def _poll_notes(self, delta: dict) -> None:
        placed = list(self.p.engine.placed)  # a C-level copy: the model thread cannot append during it
        fresh = [entry for entry in placed if entry[0] >= self._next_note]
        if not fresh:
            return
        out = []
        for seq, note, sounding in fresh:
            changed: list[str] = []
            if note.version > self._max_version:
                if self._max_version >= 0:
                    seen = set()
                    for version, name, source in list(self._changes):
                        if self._max_version < version <= note.version and name not in seen:
                            seen.add(name)
                            changed.append(f"{name} ({source})" if source else name)
                self._max_version = note.version
            item = {"s": seq, "p": sounding.pitch, "on": round(sounding.on, 4), "off": round(sounding.off, 4),
                    "v": sounding.velocity, "tune": note.tune, "tok": note.token, "down": note.bar_offset == 0}
            if note.voice != 1:  # a page lights it in its voice's part; an accompanist's by its written place
                item["vo"] = note.voice
                if note.token < 0:
                    item["at"] = f"{note.bar}:{round(note.bar_offset, 4):g}"
            if note.looped:
                item["loop"] = True
            if changed:
                item["ch"] = changed[:4]
            out.append(item)
        self._next_note = fresh[-1][0] + 1
        self._notes.extend(out)
        delta["notes"] = out

    def _poll_activity(self, delta: dict) -> None:
        queue = self.activity
        if queue is None:
            return
        out = []
        while True:
            try:
                a = queue.popleft()
            except IndexError:
                break
            column = {"t": round(a.time, 4), "e": round(a.entropy, 3), "tok": a.token,
                      "bar": [round(layer.bar_band, 3) for layer in a.layers]}
            if a.units:
                column["u"] = base64.b64encode(a.units).decode("ascii")
            out.append(column)
        if out:
            self._columns.extend(out)
            delta["activity"] = out

    def _poll_ablation(self, delta: dict) -> None:
        ablation = self.p.composer.controls.ablation  # replaced in one assignment by the model thread
        if ablation is self._ablation_seen:
            return
        self._ablation_seen = ablation
        layer, units = next(iter(ablation.units.items()), (-1, ()))
        now = {"layer": layer + 1, "units": sorted(int(u) for u in units), "mode": ablation.mode}
        if now != self._ablation:
            self._ablation = now
            delta["ablation"] = now

    def _poll_head(self, delta: dict) -> None:
        now = time.monotonic()
        if now - self._head_at < HEAD_EVERY_S:
            return
        self._head_at = now
        p, params = self.p, self.params
        engine = p.engine
        tune = p.composer.tune
        meter = tune.meter if tune is not None and tune.meter else "4/4"
        clock_qpm = float(params.get("tempo.clock"))  # an external MIDI clock's tempo rules while it is followed
        tempo = clock_qpm or float(params.get("tempo"))
        p99 = onset_p99_ms(p)
        head = {"tune": tune.number if tune is not None else 0, "meter": meter,
                "mode": tune.mode if tune is not None else "", "bars": engine.phrasing.bars,
                "notes": engine.notes_played, "tempo": round(tempo, 1), "clock": bool(clock_qpm),
                "bar_s": round(engine.phrasing.spq(meter) * vocab.METER_EIGHTHS[meter] / 2, 4),
                "onset_p99_ms": None if p99 is None else round(p99, 3), "late": engine.late_notes,
                "resyncs": engine.resyncs, "hold": bool(params.get("hold")), "running": not engine.finished.is_set(),
                "stop": engine.stop_reason, "pads": self.pads(),
                "lookahead_ms": round(lookahead_ms(p.composer, engine.phrasing)), "link": _line(p, "link"), "listen": _line(p, "listener")}
        if head != self._head:
            self._head = head
            delta["head"] = head
        lines = [out.status() for out in engine.outputs] + list(self.status()) + list(self.controller_activity())[-6:]
        if lines != self._lines:
            self._lines = lines
            delta["status"] = lines


def _line(performance, part: str) -> str | None:
    """The one-line status of a performance's ``link`` or ``listener``: None where it has none (a
    bench or test that puts an engine together without them) or it is off."""
    owner = getattr(performance, part, None)
    return owner.line() if owner is not None else None
