"""YAML patches: which control moves which parameter, and the state a performance starts in.

A patch is read from YAML's node tree (``yaml.compose``) rather than from plain Python
values, so every mistake is reported as ``FILE:LINE: field: what is wrong, how to fix`` at
the line where it is. All mistakes of a file are collected, not only the first. A patch
is checked against the parameter registry's specs: names, kinds, ranges and choices.

Layout (see patches/default.yaml for a commented example)::

    name: my patch
    start: {temperature: 0.9, ablation.layer: 3}
    mappings:
      - source: {midi: {cc: 1, channel: 1}}     # or {osc: /1/fader1, arg: 0}, {midi: pitchbend},
        target: temperature                      #    {midi: modwheel}, {myo: pitch}, {myo: emg}, {myo: emg.3}
        range: [0.2, 2.0]                        # default: the parameter's own range
        curve: exponential                       # linear (default), exponential, logarithmic
        invert: false
        smoothing_ms: 50                         # default: the parameter's own
        input: [0, 1]                            # raw source values meaning 0 and 1 (default 0..1)
        takeover: pickup                         # after another control moved it, wait until this one
                                                 #   crosses its value (default jump)
    actions:
      - source: {myo: fist}                      # a pose, {midi: {note: 60}}, {midi: {cc: 64}}, {osc: /2/push1}
        toggle: hold                             # or fire: tune.new, set: NAME + value: V, step: NAME + by: X
    keys: {enabled: true, weight: 0.4, source: keys}
    myo: {armband: 1, emg_smoothing_ms: 150}
    programs: {1: myo-lobotomy.yaml}
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from controllers.mapping import ACTION_KINDS, CURVES, MAPPABLE_KINDS, TAKEOVERS, Action, Mapping, default_range
from instrument.errors import UsageError
from instrument.live.params import INSTRUMENT_PARAMS, ParamError, Parameters, ParamSpec

POSES = ("rest", "fist", "waveIn", "waveOut", "fingersSpread", "doubleTap")
MYO_CONTROLS = ("yaw", "pitch", "roll", "emg", *(f"emg.{n}" for n in range(1, 9)))
TOP_FIELDS = ("name", "description", "start", "mappings", "actions", "keys", "myo", "programs")
MAPPING_FIELDS = ("source", "target", "range", "curve", "invert", "smoothing_ms", "input", "takeover")
ACTION_FIELDS = ("source", *ACTION_KINDS, "value", "by", "threshold")
SOURCE_FIELDS = ("osc", "arg", "midi", "myo")
MIDI_FIELDS = ("cc", "note", "pitchbend", "channel")
KEYS_FIELDS = ("enabled", "weight", "source")
MYO_FIELDS = ("armband", "emg_smoothing_ms")


class PatchError(UsageError):
    """A patch that cannot be used; ``errors`` holds every ``FILE:LINE: field: ...`` line."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        more = f" (and {len(errors) - 1} more: run.py patch check)" if len(errors) > 1 else ""
        super().__init__(errors[0] + more)


@dataclass(frozen=True)
class KeysConfig:
    """Keyboard stimulation: held MIDI keys become ``stimulation.keys``; while any is held the
    patch may also set the stimulation's weight (back to 0 when all are released) and source."""

    enabled: bool = True
    weight: float | None = None
    source: str | None = None


@dataclass(frozen=True)
class MyoConfig:
    armband: int | None = None  # None: any /myoN
    emg_smoothing_ms: float = 150.0


@dataclass(frozen=True)
class Patch:
    name: str
    path: Path | None = None
    start: dict[str, Any] = field(default_factory=dict)
    mappings: dict[tuple, tuple[Mapping, ...]] = field(default_factory=dict)
    actions: dict[tuple, tuple[Action, ...]] = field(default_factory=dict)
    keys: KeysConfig = KeysConfig()
    myo: MyoConfig = MyoConfig()
    programs: dict[int, Path] = field(default_factory=dict)

    @property
    def mapping_count(self) -> int:
        return sum(len(m) for m in self.mappings.values())

    @property
    def action_count(self) -> int:
        return sum(len(a) for a in self.actions.values())

    def apply_start(self, params: Parameters) -> None:
        """Set the patch's start state (validated when loaded, so this does not fail)."""
        for name, value in self.start.items():
            params.set(name, value, source=f"patch {self.name}", smoothing_ms=0)


def load_patch(path: str | Path, specs: Iterable[ParamSpec] | None = None) -> Patch:
    """Read and check a patch file; PatchError (a UsageError) lists its mistakes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PatchError([f"{path}: no such patch file (see patches/ for examples)"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise PatchError([f"{path}: cannot read it ({error})"]) from None
    return parse_patch(text, str(path), specs, base=path.parent)


def parse_patch(text: str, filename: str = "<patch>", specs: Iterable[ParamSpec] | None = None,
                base: Path | None = None) -> Patch:
    """Check the YAML ``text`` of a patch named ``filename`` (for messages)."""
    reader = _Reader(filename, {s.name: s for s in (specs if specs is not None else INSTRUMENT_PARAMS)}, base)
    patch = reader.patch(text)
    if reader.errors:
        raise PatchError(reader.errors)
    return patch


class _Reader:
    def __init__(self, filename: str, specs: dict[str, ParamSpec], base: Path | None):
        self.filename, self.specs, self.base = filename, specs, base
        self.errors: list[str] = []
        self._construct = yaml.constructor.SafeConstructor()

    # -- helpers --------------------------------------------------------------------------
    def error(self, node: yaml.Node, where: str, message: str) -> None:
        self.errors.append(f"{self.filename}:{node.start_mark.line + 1}: {where}: {message}")

    def value(self, node: yaml.Node) -> Any:
        return self._construct.construct_object(node, deep=True)

    def fields(self, node: yaml.Node, where: str, allowed: tuple[str, ...]) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """The fields of a YAML mapping as name -> (key node, value node); unknown and repeated
        fields are errors. None (after an error) if ``node`` is not a mapping."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, where, f"expected a mapping of {', '.join(allowed)}, not {self._what(node)}")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = str(self.value(key)) if isinstance(key, yaml.ScalarNode) else "?"
            label = f"{where}.{name}" if where else name
            if name not in allowed:
                self.error(key, label, f"unknown field; expected one of: {', '.join(allowed)}")
            elif name in out:
                self.error(key, label, f"given twice (first on line {out[name][0].start_mark.line + 1}); keep one")
            else:
                out[name] = (key, value)
        return out

    def _what(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return repr(self.value(node))

    def scalar(self, node: yaml.Node, where: str, types: tuple[type, ...], expected: str) -> Any:
        """A scalar of one of ``types`` (bools are not numbers here), or None after an error."""
        if isinstance(node, yaml.ScalarNode):
            value = self.value(node)
            if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
                return value
        self.error(node, where, f"expected {expected}, not {self._what(node)}")
        return None

    def number(self, node: yaml.Node, where: str, lo: float | None = None, hi: float | None = None) -> float | None:
        value = self.scalar(node, where, (int, float), "a number")
        if value is None:
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"{lo if lo is not None else ''}..{hi if hi is not None else ''}"
            self.error(node, where, f"{value} is outside {bounds}; use a number within it")
            return None
        return value

    def integer(self, node: yaml.Node, where: str, lo: int, hi: int) -> int | None:
        value = self.scalar(node, where, (int,), f"a whole number {lo}..{hi}")
        if value is not None and not lo <= value <= hi:
            self.error(node, where, f"{value} is outside {lo}..{hi}")
            return None
        return value

    def param(self, node: yaml.Node, where: str, kinds: tuple[str, ...] | None = None, why: str = "") -> ParamSpec | None:
        name = self.scalar(node, where, (str,), "a parameter name")
        if name is None:
            return None
        spec = self.specs.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(self.specs), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close[:3])}?" if close else "; see instrument/live/params.py for the list"
            self.error(node, where, f"unknown parameter {name!r}{hint}")
            return None
        if kinds is not None and spec.kind not in kinds:
            self.error(node, where, f"{name} is a {spec.kind} parameter; {why or 'expected one of kind ' + ', '.join(kinds)}")
            return None
        return spec

    def checked(self, spec: ParamSpec, node: yaml.Node, where: str) -> Any:
        """The value a patch gives a parameter, checked as ``Parameters.set`` checks it (out of
        range is a mistake here, not a clamp); None after an error."""
        try:
            return spec.coerce(self.value(node), clamp=False)[0]
        except ParamError as error:
            self.error(node, where, f"{error}; use a value within it" if "is outside" in str(error) else str(error))
            return None

    def list_of(self, node: yaml.Node, where: str) -> list[yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and self.value(node) is None):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, where, f"expected a list (items starting with '- '), not {self._what(node)}")
            return []
        return node.value

    def pair(self, node: yaml.Node, where: str) -> tuple[float, float] | None:
        if not (isinstance(node, yaml.SequenceNode) and len(node.value) == 2):
            self.error(node, where, f"expected [low, high], not {self._what(node)}")
            return None
        lo, hi = (self.number(n, where) for n in node.value)
        return None if lo is None or hi is None else (float(lo), float(hi))

    # -- the patch ------------------------------------------------------------------------
    def patch(self, text: str) -> Patch | None:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark else 1
            self.errors.append(f"{self.filename}:{line}: YAML syntax: {error.problem or error}; check indentation, colons and brackets")
            return None
        except yaml.YAMLError as error:
            self.errors.append(f"{self.filename}:1: YAML: {error}")
            return None
        if root is None:
            self.errors.append(f"{self.filename}:1: patch: the file is empty; give at least a name")
            return None
        top = self.fields(root, "", TOP_FIELDS)
        if top is None:
            return None
        get = lambda name: top[name][1] if name in top else None  # noqa: E731
        name = Path(self.filename).stem
        if get("name") is not None:
            name = self.scalar(get("name"), "name", (str, int, float), "a name") or name
        if get("description") is not None:
            self.scalar(get("description"), "description", (str,), "text")
        start = self.start(get("start")) if get("start") is not None else {}
        mappings: dict[tuple, list[Mapping]] = {}
        for i, node in enumerate(self.list_of(get("mappings"), "mappings")):
            mapping = self.mapping(node, f"mappings[{i}]")
            if mapping is not None:
                mappings.setdefault(mapping.source, []).append(mapping)
        actions: dict[tuple, list[Action]] = {}
        for i, node in enumerate(self.list_of(get("actions"), "actions")):
            action = self.action(node, f"actions[{i}]")
            if action is not None:
                actions.setdefault(action.source, []).append(action)
        keys = self.keys(get("keys")) if get("keys") is not None else KeysConfig()
        myo = self.myo(get("myo")) if get("myo") is not None else MyoConfig()
        programs = self.programs(get("programs")) if get("programs") is not None else {}
        return Patch(str(name), Path(self.filename) if self.base is not None else None, start,
                     {k: tuple(v) for k, v in mappings.items()}, {k: tuple(v) for k, v in actions.items()},
                     keys or KeysConfig(), myo or MyoConfig(), programs)

    def start(self, node: yaml.Node) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "start", f"expected a mapping of parameter: value, not {self._what(node)}")
            return {}
        out: dict[str, Any] = {}
        for key, value_node in node.value:
            spec = self.param(key, "start", tuple(k for k in MAPPABLE_KINDS + ("text", "list")),
                              "fire triggers from actions, not at the start")
            if spec is None:
                continue
            where = f"start.{spec.name}"
            coerced = self.checked(spec, value_node, where)
            if coerced is not None:
                out[spec.name] = coerced
        return out

    def source(self, node: yaml.Node, where: str, for_action: bool) -> tuple | None:
        fields = self.fields(node, where, SOURCE_FIELDS)
        if fields is None:
            return None
        kinds = [k for k in ("osc", "midi", "myo") if k in fields]
        if len(kinds) != 1:
            self.error(node, where, "give exactly one of osc, midi, myo" + (f" (got {', '.join(kinds)})" if kinds else ""))
            return None
        kind = kinds[0]
        value_node = fields[kind][1]
        if "arg" in fields and kind != "osc":
            self.error(fields["arg"][0], f"{where}.arg", "arg applies to osc sources only; remove it")
        if kind == "osc":
            address = self.scalar(value_node, f"{where}.osc", (str,), "an OSC address like /1/fader1")
            if address is None:
                return None
            if not address.startswith("/") or " " in address:
                self.error(value_node, f"{where}.osc", f"{address!r} is not an OSC address; it starts with / and has no spaces")
                return None
            arg = self.integer(fields["arg"][1], f"{where}.arg", 0, 63) if "arg" in fields else 0
            return ("osc", address, arg or 0)
        if kind == "myo":
            allowed = POSES if for_action else MYO_CONTROLS
            name = self.scalar(value_node, f"{where}.myo", (str,), f"one of: {', '.join(allowed)}")
            if name is None:
                return None
            if name not in allowed:
                hint = " (poses go in actions:)" if name in POSES else " (yaw, pitch, roll, emg go in mappings:)" if name in MYO_CONTROLS else ""
                self.error(value_node, f"{where}.myo", f"{name!r} is not one of: {', '.join(allowed)}{hint}")
                return None
            return ("pose", name) if for_action else ("myo", name)
        return self.midi(value_node, f"{where}.midi", for_action)

    def midi(self, node: yaml.Node, where: str, for_action: bool) -> tuple | None:
        if isinstance(node, yaml.ScalarNode):
            name = self.value(node)
            if name == "pitchbend" and not for_action:
                return ("pitchbend", None)
            if name == "modwheel":
                return ("cc", None, 1)
            self.error(node, where, f"expected pitchbend, modwheel or {{cc: N, channel: C}}{' / {note: N}' if for_action else ''}, not {name!r}")
            return None
        fields = self.fields(node, where, MIDI_FIELDS)
        if fields is None:
            return None
        channel = self.integer(fields["channel"][1], f"{where}.channel", 1, 16) if "channel" in fields else None
        kinds = [k for k in ("cc", "note", "pitchbend") if k in fields]
        if len(kinds) != 1:
            self.error(node, where, "give exactly one of cc, note, pitchbend")
            return None
        kind = kinds[0]
        if kind == "note" and not for_action:
            self.error(fields["note"][0], f"{where}.note", "notes play the keyboard stimulation (keys:) or trigger actions:; map a cc here")
            return None
        if kind == "pitchbend":
            if for_action:
                self.error(fields["pitchbend"][0], f"{where}.pitchbend", "pitch bend is continuous: map it in mappings:")
                return None
            return ("pitchbend", channel)
        number = self.integer(fields[kind][1], f"{where}.{kind}", 0, 127)
        return None if number is None else (kind, channel, number)

    def mapping(self, node: yaml.Node, where: str) -> Mapping | None:
        fields = self.fields(node, where, MAPPING_FIELDS)
        if fields is None:
            return None
        ok = True
        for required in ("source", "target"):
            if required not in fields:
                self.error(node, where, f"{required} is missing; every mapping has a source and a target")
                ok = False
        if not ok:
            return None
        source = self.source(fields["source"][1], f"{where}.source", for_action=False)
        spec = self.param(fields["target"][1], f"{where}.target", MAPPABLE_KINDS,
                          "map numbers, on/off and choices; fire triggers from actions:")
        if source is None or spec is None:
            return None
        lo, hi = default_range(spec)
        if "range" in fields:
            node_r = fields["range"][1]
            pair = self.pair(node_r, f"{where}.range")
            if pair is None:
                return None
            full = default_range(spec)
            for v in pair:
                if not min(full) <= v <= max(full):
                    self.error(node_r, f"{where}.range", f"{v:g} is outside {spec.name}'s range {full[0]:g}..{full[1]:g}; use values within it")
                    return None
            if pair[0] == pair[1]:
                self.error(node_r, f"{where}.range", "low and high are equal; give two different values (invert: true to reverse)")
                return None
            lo, hi = pair
        input_lo, input_hi = 0.0, 1.0
        if "input" in fields:
            pair = self.pair(fields["input"][1], f"{where}.input")
            if pair is None:
                return None
            if pair[0] == pair[1]:
                self.error(fields["input"][1], f"{where}.input", "low and high are equal; give the raw values meaning 0 and 1")
                return None
            input_lo, input_hi = pair
        shape = "linear"
        if "curve" in fields:
            shape = self.scalar(fields["curve"][1], f"{where}.curve", (str,), f"one of {', '.join(CURVES)}")
            if shape not in CURVES:
                if shape is not None:
                    self.error(fields["curve"][1], f"{where}.curve", f"{shape!r} is not one of: {', '.join(CURVES)}")
                return None
        invert = False
        if "invert" in fields:
            invert = self.scalar(fields["invert"][1], f"{where}.invert", (bool,), "true or false")
            if invert is None:
                return None
        smoothing = None
        if "smoothing_ms" in fields:
            smoothing = self.number(fields["smoothing_ms"][1], f"{where}.smoothing_ms", 0, 60000)
            if smoothing is None:
                return None
        takeover = "jump"
        if "takeover" in fields:
            takeover = self.scalar(fields["takeover"][1], f"{where}.takeover", (str,), f"one of {', '.join(TAKEOVERS)}")
            if takeover not in TAKEOVERS:
                if takeover is not None:
                    self.error(fields["takeover"][1], f"{where}.takeover", f"{takeover!r} is not one of: {', '.join(TAKEOVERS)}")
                return None
        line = f"{self.filename}:{node.start_mark.line + 1}"
        return Mapping(source, spec.name, float(lo), float(hi), shape, invert,
                       None if smoothing is None else float(smoothing), input_lo, input_hi, takeover, line)

    def action(self, node: yaml.Node, where: str) -> Action | None:
        fields = self.fields(node, where, ACTION_FIELDS)
        if fields is None:
            return None
        if "source" not in fields:
            self.error(node, where, "source is missing; every action has a source")
            return None
        kinds = [k for k in ACTION_KINDS if k in fields]
        if len(kinds) != 1:
            self.error(node, where, f"give exactly one of: {', '.join(ACTION_KINDS)}" + (f" (got {', '.join(kinds)})" if kinds else ""))
            return None
        kind = kinds[0]
        source = self.source(fields["source"][1], f"{where}.source", for_action=True)
        target_node = fields[kind][1]
        kinds_for = {"fire": ("trigger",), "toggle": ("bool",), "set": MAPPABLE_KINDS + ("text", "list"), "step": ("float", "int")}
        why = {"fire": "fire triggers only (tune.new, panic); use set or toggle", "toggle": "toggle on/off parameters only; use set or step",
               "set": "fire triggers instead", "step": "step numbers only; use set or toggle"}[kind]
        spec = self.param(target_node, f"{where}.{kind}", kinds_for[kind], why)
        value: Any = None
        if kind == "set":
            if "value" not in fields:
                self.error(node, where, "value is missing; set: NAME needs value: V")
                return None
            if spec is not None:
                value = self.checked(spec, fields["value"][1], f"{where}.value")
                if value is None:
                    return None
        elif "value" in fields:
            self.error(fields["value"][0], f"{where}.value", f"value goes with set:, not {kind}: (step uses by:)")
        if kind == "step":
            if "by" not in fields:
                self.error(node, where, "by is missing; step: NAME needs by: +X or -X")
                return None
            value = self.number(fields["by"][1], f"{where}.by")
            if value is None:
                return None
            if value == 0:
                self.error(fields["by"][1], f"{where}.by", "a step of 0 does nothing; give +X or -X")
                return None
        elif "by" in fields:
            self.error(fields["by"][0], f"{where}.by", f"by goes with step:, not {kind}:")
        threshold = 0.5
        if "threshold" in fields:
            threshold = self.number(fields["threshold"][1], f"{where}.threshold", 0, 1)
            if threshold is None:
                return None
        if source is None or spec is None:
            return None
        return Action(source, kind, spec.name, value, float(threshold), f"{self.filename}:{node.start_mark.line + 1}")

    def keys(self, node: yaml.Node) -> KeysConfig | None:
        fields = self.fields(node, "keys", KEYS_FIELDS)
        if fields is None:
            return None
        enabled, weight, source = True, None, None
        if "enabled" in fields:
            enabled = self.scalar(fields["enabled"][1], "keys.enabled", (bool,), "true or false")
        if "weight" in fields:
            weight = self.number(fields["weight"][1], "keys.weight", 0, 1)
        if "source" in fields:
            spec = self.specs["stimulation.source"]
            source = self.scalar(fields["source"][1], "keys.source", (str,), f"one of: {', '.join(spec.choices)}")
            if source is not None and source not in spec.choices:
                self.error(fields["source"][1], "keys.source", f"{source!r} is not one of: {', '.join(spec.choices)}")
                source = None
        return KeysConfig(bool(enabled) if enabled is not None else True, None if weight is None else float(weight), source)

    def myo(self, node: yaml.Node) -> MyoConfig | None:
        fields = self.fields(node, "myo", MYO_FIELDS)
        if fields is None:
            return None
        armband = self.integer(fields["armband"][1], "myo.armband", 1, 99) if "armband" in fields else None
        smoothing = 150.0
        if "emg_smoothing_ms" in fields:
            smoothing = self.number(fields["emg_smoothing_ms"][1], "myo.emg_smoothing_ms", 0, 10000)
        return MyoConfig(armband, float(smoothing if smoothing is not None else 150.0))

    def programs(self, node: yaml.Node) -> dict[int, Path]:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "programs", f"expected a mapping of program number: patch file, not {self._what(node)}")
            return {}
        out: dict[int, Path] = {}
        for key, value_node in node.value:
            number = self.integer(key, "programs", 0, 127)
            name = self.scalar(value_node, f"programs.{number}", (str,), "a patch file name")
            if number is None or name is None:
                continue
            path = Path(name)
            if self.base is not None and not path.is_absolute():
                path = self.base / path
            if self.base is not None and not path.is_file():
                self.error(value_node, f"programs.{number}", f"no patch file {str(path)!r}; give a path relative to this patch")
                continue
            out[number] = path
        return out
