"""YAML patches: which control moves which parameter, and the state a performance starts in.

A patch is read from YAML's node tree (``yaml.compose``) rather than from plain Python
values, so every mistake is reported as ``FILE:LINE: field: what is wrong, how to fix`` at
the line where it is. All mistakes of a file are collected, not only the first. A patch
is checked against the parameter registry's specs: names, kinds, ranges and choices.

A message never quotes the file: it names the line, the field (one of the format's own names)
and what was expected, never the text found there. Patches name other files (``programs:``, each
a ``.yaml`` patch that exists), and errors reach the log and ``/state``, which any page viewer
sees: a file that is not a patch (``programs: {1: /etc/passwd}``) must not be shown that way.

Layout (see patches/default.yaml for a commented example)::

    name: my patch
    start: {temperature: 0.9, ablation.layer: 3}
    mappings:
      - source: {midi: {cc: 1, channel: 1}}     # or {osc: /1/fader1, arg: 0}, {midi: pitchbend},
        target: temperature                      #    {midi: modwheel}, {myo: pitch}, {myo: emg}, {myo: emg.3},
                                                 #    {web: x}, {web: y} (the page's XY pad; x2, y2: a second finger)
        range: [0.2, 2.0]                        # default: the parameter's own range
        curve: exponential                       # linear (default), exponential, logarithmic
        invert: false
        smoothing_ms: 50                         # default: the parameter's own
        input: [0, 1]                            # raw source values meaning 0 and 1 (default 0..1)
        takeover: pickup                         # after another control moved it, wait until this one
                                                 #   crosses its value (default jump)
    actions:
      - source: {myo: fist}                      # a pose, {midi: {note: 60}}, {midi: {cc: 64}}, {osc: /2/push1},
                                                 #   {web: touch} (a finger lands on the pad; touch2: a second)
        toggle: hold                             # or fire: tune.new, set: NAME + value: V, step: NAME + by: X
    keys: {enabled: true, weight: 0.4, source: keys}
    myo: {armband: 1, emg_smoothing_ms: 150}
    programs: {1: myo-lobotomy.yaml}
    ensemble:                                    # the voices (default: the lead alone); see patches/ensembles/
      - {role: lead, timbre: fiddle, channel: 1, pan: -0.3}
      - {role: follow, timbre: flute, pan: 0.3, start: {cohesion: 0.6}}   # voice 2: voice.2.cohesion ...

An ensemble file (``--ensemble FILE.yaml``, ``patches/ensembles/*.yaml``) holds ``name``,
``description`` and ``ensemble`` only. Each voice: ``role`` lead (exactly one, first), follow,
chords or drone; ``timbre`` a folk timbre (``--timbre list``); ``channel`` 1..16, not 10 (GM's
drums), each once (default: 1, 2, 3, ... in order); ``pan`` -1..1; ``start`` the voice's start
values, named as within the voice (``temperature``, not ``voice.2.temperature``). Mistakes are
``FILE:LINE: ensemble[N].field: ...`` with N the voice's number.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from controllers.mapping import ACTION_KINDS, CURVES, MAPPABLE_KINDS, TAKEOVERS, Action, Mapping, default_range
from instrument.errors import UsageError, excerpt
from instrument.live.ensemble import DRUM_CHANNEL, MAX_VOICES, Ensemble, VoiceSpec, default_channels, voice_names
from instrument.live.params import INSTRUMENT_PARAMS, ROLES, ParamError, Parameters, ParamSpec, lead_aliases, voice_specs
from instrument.music.timbres import GM_TIMBRES, find_timbre
from patches import ENSEMBLES

POSES = ("rest", "fist", "waveIn", "waveOut", "fingersSpread", "doubleTap")
MYO_CONTROLS = ("yaw", "pitch", "roll", "emg", *(f"emg.{n}" for n in range(1, 9)))
WEB_CONTROLS = ("x", "y", "x2", "y2")  # the web page's XY pad: first and second finger, 0..1 (y up)
WEB_PRESSES = ("touch", "touch2")  # a finger on the pad: 1 while it touches, 0 when it lifts
TOP_FIELDS = ("name", "description", "start", "mappings", "actions", "keys", "myo", "programs", "ensemble")
ENSEMBLE_TOP_FIELDS = ("name", "description", "ensemble")
VOICE_FIELDS = ("role", "timbre", "channel", "pan", "start")
MAPPING_FIELDS = ("source", "target", "range", "curve", "invert", "smoothing_ms", "input", "takeover")
ACTION_FIELDS = ("source", *ACTION_KINDS, "value", "by", "threshold")
SOURCE_FIELDS = ("osc", "arg", "midi", "myo", "web")
MIDI_FIELDS = ("cc", "note", "pitchbend", "channel")
KEYS_FIELDS = ("enabled", "weight", "source")
MYO_FIELDS = ("armband", "emg_smoothing_ms")
# Bounds that keep a hostile or mistaken file cheap to refuse (the shipped patches are about 2 KB
# and 150 values; a patch with a hundred mappings is still under 20 KB and 1,500 values):
MAX_PATCH_BYTES = 64 * 1024  # refused from its size, before it is read
MAX_PATCH_VALUES = 10_000  # YAML nodes once aliases are expanded (a 400-byte alias bomb makes 10^9)
MAX_PATCH_DEPTH = 32  # nesting levels (a patch uses 5)
MAX_ERRORS = 50  # mistakes listed per file; the rest counted
PATCH_SUFFIXES = (".yaml", ".yml")  # what a file named in programs: must be
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # a quotation inside a YAML error's description


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
    ensemble: Ensemble | None = None  # the patch's own voices (``--ensemble`` overrides them)

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


def load_patch(path: str | Path, specs: Iterable[ParamSpec] | None = None, own_ensemble: bool = False) -> Patch:
    """Read and check a patch file; PatchError (a UsageError) lists its mistakes. ``specs``: the
    parameters of the performance it steers (with its voices'); ``own_ensemble``: its mappings
    may also name the voices of the patch's own ``ensemble:`` (``patch check``)."""
    text = _read(Path(path), "patch")
    return parse_patch(text, str(path), specs, base=Path(path).parent, own_ensemble=own_ensemble)


def load_ensemble(path: str | Path, specs: Iterable[ParamSpec] | None = None) -> Ensemble:
    """Read and check an ensemble file (``--ensemble FILE.yaml``); PatchError lists its mistakes."""
    path = Path(path)
    text = _read(path, "ensemble")
    reader = _Reader(str(path), _by_name(specs), path.parent)
    ensemble = reader.ensemble_file(text)
    if reader.errors:
        raise PatchError(reader.errors)
    return ensemble


def find_ensemble(name: str, specs: Iterable[ParamSpec] | None = None) -> Ensemble:
    """A shipped ensemble by name (``solo``, ``duo``, ``trio``, ``pipes``) or an ensemble file;
    UsageError naming the shipped ones."""
    shipped = ENSEMBLES / f"{name}.yaml"
    if "/" not in name and not name.endswith((".yaml", ".yml")):
        if not shipped.is_file():
            raise UsageError(f"--ensemble {name}: no such ensemble; choose {', '.join(shipped_ensembles())} "
                             "or give a FILE.yaml ('--ensemble list' shows them)")
        return load_ensemble(shipped, specs)
    return load_ensemble(name, specs)


def shipped_ensembles() -> list[str]:
    order = ("solo", "duo", "trio", "pipes")  # the smallest first, as the README lists them
    return [p.stem for p in sorted(ENSEMBLES.glob("*.yaml"), key=lambda p: (order.index(p.stem) if p.stem in order else 9, p.stem))]


def ensemble_table() -> str:
    """What ``--ensemble list`` prints: each shipped ensemble and its voices."""
    lines = []
    for name in shipped_ensembles():
        ensemble = load_ensemble(ENSEMBLES / f"{name}.yaml")
        lines.append(f"{name:<8}{ensemble.describe()}")
    lines.append("or --ensemble FILE.yaml (patches/ensembles/ holds these as examples)")
    return "\n".join(lines)


def _read(path: Path, what: str) -> str:
    """A patch or ensemble file's text, within the size bound; PatchError (one line) if not."""
    try:
        if path.exists() and not path.is_file():  # a directory, or a FIFO that would block the open
            raise PatchError([f"{path}: not a file; give a YAML patch file"])
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_PATCH_BYTES + 1) if size <= MAX_PATCH_BYTES else b""
        if size > MAX_PATCH_BYTES or len(data) > MAX_PATCH_BYTES:
            raise PatchError([_too_big(str(path), max(size, len(data)))])
        return data.decode("utf-8")
    except FileNotFoundError:
        raise PatchError([f"{path}: no such {what} file (see patches/ for examples)"]) from None
    except UnicodeDecodeError:
        raise PatchError([f"{path}: not UTF-8 text; is it the right file?"]) from None
    except OSError as error:
        raise PatchError([f"{path}: cannot read it ({error.strerror or type(error).__name__})"]) from None


def _by_name(specs: Iterable[ParamSpec] | None) -> dict[str, ParamSpec]:
    """Parameter name -> spec, the lead's ``voice.1.X`` aliases included."""
    by = {s.name: s for s in (specs if specs is not None else INSTRUMENT_PARAMS)}
    return {**by, **{alias: by[name] for alias, name in lead_aliases(by).items()}}


def _too_big(filename: str, size: int) -> str:
    return f"{filename}:1: patch: {size:,} bytes is over the {MAX_PATCH_BYTES // 1024} KiB a patch may have; is it the right file?"


def parse_patch(text: str, filename: str = "<patch>", specs: Iterable[ParamSpec] | None = None,
                base: Path | None = None, own_ensemble: bool = False) -> Patch:
    """Check the YAML ``text`` of a patch named ``filename`` (for messages)."""
    if len(text) > MAX_PATCH_BYTES:
        raise PatchError([_too_big(filename, len(text))])
    reader = _Reader(filename, _by_name(specs), base, own_ensemble)
    patch = reader.patch(text)
    if reader.errors:
        raise PatchError(reader.errors)
    return patch


class _Refused(Exception):
    def __init__(self, node: yaml.Node, why: str):
        self.node, self.why = node, why


class _Reader:
    def __init__(self, filename: str, specs: dict[str, ParamSpec], base: Path | None, own_ensemble: bool = False):
        self.filename, self.specs, self.base = filename, specs, base
        self.own_ensemble = own_ensemble
        self.errors: list[str] = []
        self._construct = yaml.constructor.SafeConstructor()

    # -- helpers --------------------------------------------------------------------------
    def error(self, node: yaml.Node, where: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{self.filename}:{node.start_mark.line + 1}: {excerpt(where, 80)}: {excerpt(message, 300)}")
        elif len(self.errors) == MAX_ERRORS:
            self.errors.append(f"{self.filename}: more mistakes follow; fix these first")

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
            if name not in allowed:  # named by its line only: the file's text is not quoted
                self.error(key, where or "patch", f"an unknown field; expected one of: {', '.join(allowed)}")
            elif name in out:
                self.error(key, label, f"given twice (first on line {out[name][0].start_mark.line + 1}); keep one")
            else:
                out[name] = (key, value)
        return out

    def _what(self, node: yaml.Node) -> str:
        """What kind of value ``node`` holds, never the value itself (see the module docstring)."""
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        value = self.value(node)
        if value is None:
            return "nothing"
        if isinstance(value, bool):
            return "true/false"
        if isinstance(value, (int, float)):
            return "a number"
        return "text" if isinstance(value, str) else f"a {type(value).__name__}"

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
            self.error(node, where, f"the number is outside {bounds}; use a number within it")
            return None
        return value

    def integer(self, node: yaml.Node, where: str, lo: int, hi: int) -> int | None:
        value = self.scalar(node, where, (int,), f"a whole number {lo}..{hi}")
        if value is not None and not lo <= value <= hi:
            self.error(node, where, f"the number is outside {lo}..{hi}")
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
            self.error(node, where, f"an unknown parameter{hint}")
            return None
        if kinds is not None and spec.kind not in kinds:
            self.error(node, where, f"{name} is a {spec.kind} parameter; {why or 'expected one of kind ' + ', '.join(kinds)}")
            return None
        return spec

    def checked(self, spec: ParamSpec, node: yaml.Node, where: str) -> Any:
        """The value a patch gives a parameter, checked as ``Parameters.set`` checks it (out of
        range is a mistake here, not a clamp); None after an error."""
        value = self.value(node)
        try:
            return spec.coerce(value, clamp=False)[0]
        except ParamError as error:
            outside = "is outside" in str(error)
            if not _holds_text(value) and not outside:  # a model's own bound, said with the number asked
                self.error(node, where, str(error))
                return None
            # a message that quotes text could echo a file's line: said here without it
            if error.reason:
                self.error(node, where, error.reason)
                return None
            self.error(node, where, f"{'outside the range of' if outside else 'not a value'} {spec.name}; "
                                    f"it takes {_takes(spec)}")
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
    def top(self, text: str, allowed: tuple[str, ...]) -> tuple[dict[str, tuple[yaml.Node, yaml.Node]], str] | None:
        """A file's top-level fields and its name (its ``name:``, else the file's), its
        description checked; None after an error."""
        root = self.root(text)
        if root is None:
            return None
        top = self.fields(root, "", allowed)
        if top is None:
            return None
        name = Path(self.filename).stem
        if "name" in top:
            name = self.scalar(top["name"][1], "name", (str, int, float), "a name") or name
        if "description" in top:
            self.scalar(top["description"][1], "description", (str,), "text")
        return top, str(name)

    def patch(self, text: str) -> Patch | None:
        found = self.top(text, TOP_FIELDS)
        if found is None:
            return None
        top, name = found
        get = lambda field: top[field][1] if field in top else None  # noqa: E731
        ensemble = self.ensemble(get("ensemble"), name) if get("ensemble") is not None else None
        if ensemble is not None and self.own_ensemble:  # its mappings may steer its own voices
            self.specs = _by_name((*self.specs.values(), *ensemble.param_specs(self.specs.values())))
        return self.patch_fields(get, name, ensemble)

    def ensemble_file(self, text: str) -> Ensemble | None:
        found = self.top(text, ENSEMBLE_TOP_FIELDS)
        if found is None:
            return None
        top, name = found
        if "ensemble" not in top:
            self.errors.append(f"{self.filename}:1: ensemble: missing; list the voices under ensemble:, the lead first")
            return None
        return self.ensemble(top["ensemble"][1], name)

    def root(self, text: str) -> yaml.Node | None:
        """The YAML node tree of a file within the bounds, or None after an error."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark else 1
            self.errors.append(f"{self.filename}:{line}: YAML syntax: {_described(error.problem)}; check indentation, colons and brackets")
            return None
        except yaml.YAMLError as error:
            self.errors.append(f"{self.filename}:1: YAML: {_described(getattr(error, 'problem', None))}")
            return None
        except RecursionError:
            self.errors.append(f"{self.filename}:1: YAML: nested too deep; a patch nests {MAX_PATCH_DEPTH} levels at most")
            return None
        if root is not None and not self.small_enough(root):
            return None
        if root is None:
            self.errors.append(f"{self.filename}:1: patch: the file is empty; give at least a name")
            return None
        return root

    def patch_fields(self, get, name: str, ensemble: Ensemble | None) -> Patch:
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
                     keys or KeysConfig(), myo or MyoConfig(), programs, ensemble)

    def ensemble(self, node: yaml.Node, name: str) -> Ensemble | None:
        """The voices of ``ensemble:``: each checked, every mistake at its line."""
        items = self.list_of(node, "ensemble")
        if not items:
            self.error(node, "ensemble", "no voices; give at least the lead: - {role: lead}")
            return None
        if len(items) > MAX_VOICES:
            self.error(items[MAX_VOICES], "ensemble", f"{len(items)} voices; an ensemble has at most {MAX_VOICES}")
            return None
        ok = True
        roles: list[str] = []
        timbres: list[str | None] = []
        channels: list[int | None] = []
        pans: list[float] = []
        starts: list[tuple] = []
        seen: dict[int, int] = {}
        for number, item in enumerate(items, 1):
            where = f"ensemble[{number}]"
            fields = self.fields(item, where, VOICE_FIELDS)
            if fields is None:
                ok = False
                continue
            role = None
            if "role" not in fields:
                self.error(item, where, f"role is missing; give one of {', '.join(ROLES)}")
            else:
                role = self.scalar(fields["role"][1], f"{where}.role", (str,), f"one of {', '.join(ROLES)}")
                if role is not None and role not in ROLES:
                    self.error(fields["role"][1], f"{where}.role", f"not one of: {', '.join(ROLES)}")
                    role = None
                elif role is not None and (role == "lead") != (number == 1):
                    self.error(fields["role"][1], f"{where}.role", "the first voice is the lead, and only the first"
                               if number > 1 else f"the first voice is the lead, not {role}; put the lead first")
                    role = None
            timbre = None
            if "timbre" in fields:
                text = self.scalar(fields["timbre"][1], f"{where}.timbre", (str,), "a timbre name like fiddle")
                try:
                    timbre = find_timbre(text).name if text is not None else None
                except ValueError:  # (its message quotes the name: said here without it)
                    self.error(fields["timbre"][1], f"{where}.timbre",
                               f"an unknown timbre; choose one of {', '.join(GM_TIMBRES)} ('--timbre list' shows them)")
                    ok = False
            channel = None
            if "channel" in fields:
                channel = self.integer(fields["channel"][1], f"{where}.channel", 1, 16)
                if channel == DRUM_CHANNEL:
                    self.error(fields["channel"][1], f"{where}.channel", "General MIDI's drums' channel (10); choose another")
                    channel = None
                elif channel in seen:
                    self.error(fields["channel"][1], f"{where}.channel", f"voice {seen[channel]} plays on that channel; "
                               "give each voice its own")
                    channel = None
                elif channel is not None:
                    seen[channel] = number
                ok = ok and channel is not None
            pan = 0.0
            if "pan" in fields:
                pan = self.number(fields["pan"][1], f"{where}.pan", -1, 1)
                ok = ok and pan is not None
            start: tuple = ()
            if "start" in fields and role is not None:
                start = self.voice_start(fields["start"][1], f"{where}.start", number, role)
            ok = ok and role is not None and (start is not None)
            roles.append(role or "")
            timbres.append(timbre)
            channels.append(channel)
            pans.append(float(pan or 0.0))
            starts.append(start or ())
        if not ok:
            return None
        names = voice_names(roles)
        voices = tuple(VoiceSpec(n, role, timbre, channel, pan, start, label) for n, (role, timbre, channel, pan, start, label)
                       in enumerate(zip(roles, timbres, default_channels(channels), pans, starts, names), 1))
        return Ensemble(name, voices, Path(self.filename) if self.base is not None else None)

    def voice_start(self, node: yaml.Node, where: str, number: int, role: str) -> tuple | None:
        """A voice's start values, named within the voice, each checked by its parameter."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, where, f"expected a mapping of parameter: value, not {self._what(node)}")
            return None
        if role == "lead":
            own = {name: spec for name, spec in self.specs.items() if not name.startswith("voice.")}
        else:
            prefix = f"voice.{number}."
            own = {s.name[len(prefix):]: s for s in voice_specs([(number, role)], self.specs.values())}
        out = []
        for key, value_node in node.value:
            name = self.value(key) if isinstance(key, yaml.ScalarNode) else None
            spec = own.get(name) if isinstance(name, str) else None
            if spec is None or spec.kind == "trigger":
                close = difflib.get_close_matches(str(name), [n for n, s in own.items() if s.kind != "trigger"], n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else f"; a {role} takes {', '.join(sorted(own))[:200]}"
                self.error(key, where, f"not a parameter of a {role}{hint}")
                return None
            value = self.checked(spec, value_node, f"{where}.{name}")
            if value is None:
                return None
            out.append((name, value))
        return tuple(out)

    def small_enough(self, root: yaml.Node) -> bool:
        """Whether the node tree stays within the bounds once aliases are expanded: an alias
        (``*name``) repeats its anchor's whole tree, so a few hundred bytes of nested aliases
        would make a billion values for the checks below. Counted without expanding anything:
        each node's size is computed once (linear in the file), stopping at the bound."""
        sizes: dict[int, int] = {}
        open_: set[int] = set()

        def size(node: yaml.Node, depth: int) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in open_:
                raise _Refused(node, "an alias refers to the value it is inside of; write the value out")
            if depth > MAX_PATCH_DEPTH:
                raise _Refused(node, f"nested deeper than {MAX_PATCH_DEPTH} levels")
            open_.add(key)
            total = 1
            children = node.value if isinstance(node, yaml.SequenceNode) else \
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else ()
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_PATCH_VALUES:
                    raise _Refused(node, f"with its aliases (*name) expanded this holds over {MAX_PATCH_VALUES:,} values; "
                                         "write the values out, without aliases")
            open_.discard(key)
            sizes[key] = total
            return total

        try:
            size(root, 0)
        except _Refused as refused:
            self.error(refused.node, "patch", refused.why)
            return False
        return True

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
        kinds = [k for k in ("osc", "midi", "myo", "web") if k in fields]
        if len(kinds) != 1:
            self.error(node, where, "give exactly one of osc, midi, myo, web" + (f" (got {', '.join(kinds)})" if kinds else ""))
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
                self.error(value_node, f"{where}.osc", "not an OSC address; an address starts with / and has no spaces")
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
                self.error(value_node, f"{where}.myo", f"not one of: {', '.join(allowed)}{hint}")
                return None
            return ("pose", name) if for_action else ("myo", name)
        if kind == "web":
            allowed = WEB_PRESSES + WEB_CONTROLS if for_action else WEB_CONTROLS
            name = self.scalar(value_node, f"{where}.web", (str,), f"one of: {', '.join(allowed)}")
            if name is not None and name not in allowed:
                hint = " (touch and touch2 go in actions:)" if name in WEB_PRESSES else ""
                self.error(value_node, f"{where}.web", f"not one of: {', '.join(allowed)}{hint}")
                return None
            return None if name is None else ("web", name)
        return self.midi(value_node, f"{where}.midi", for_action)

    def midi(self, node: yaml.Node, where: str, for_action: bool) -> tuple | None:
        if isinstance(node, yaml.ScalarNode):
            name = self.value(node)
            if name == "pitchbend" and not for_action:
                return ("pitchbend", None)
            if name == "modwheel":
                return ("cc", None, 1)
            self.error(node, where, f"expected pitchbend, modwheel or {{cc: N, channel: C}}{' / {note: N}' if for_action else ''}, not {self._what(node)}")
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
                    self.error(node_r, f"{where}.range", f"a value is outside {spec.name}'s range {full[0]:g}..{full[1]:g}; use values within it")
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
                    self.error(fields["curve"][1], f"{where}.curve", f"not one of: {', '.join(CURVES)}")
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
                    self.error(fields["takeover"][1], f"{where}.takeover", f"not one of: {', '.join(TAKEOVERS)}")
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
                self.error(fields["source"][1], "keys.source", f"not one of: {', '.join(spec.choices)}")
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
            problem = _not_a_patch_file(path, check_file=self.base is not None)
            if problem:
                self.error(value_node, f"programs.{number}", f"{problem}; give a .yaml patch, a path relative to this patch")
                continue
            out[number] = path
        return out


def _not_a_patch_file(path: Path, check_file: bool = True) -> str | None:
    """Why ``path`` cannot be a patch a program change switches to (None if it can): a ``.yaml``
    or ``.yml`` file that exists (its content is checked when it is loaded, and never quoted)."""
    if path.suffix.lower() not in PATCH_SUFFIXES:
        return f"{str(path)!r} is not a patch file (a patch is a .yaml or .yml file)"
    if check_file and not path.is_file():
        return f"no patch file {str(path)!r}"
    return None


def _holds_text(value: Any) -> bool:
    """Whether a patch value holds text, which a refusal never quotes (it may come from any file)."""
    if isinstance(value, (list, tuple)):
        return any(_holds_text(item) for item in value)
    return isinstance(value, str)


def _takes(spec: ParamSpec) -> str:
    """What a parameter takes, in words, for a message that must not quote the value given."""
    if spec.kind in ("float", "int"):
        whole = "a whole number" if spec.kind == "int" else "a number"
        return f"{whole} {spec.minimum:g}..{spec.maximum:g}" + (f" {spec.unit}" if spec.unit else "")
    if spec.kind == "bool":
        return "true or false"
    if spec.kind == "choice":
        shown = ", ".join(spec.choices[:12]) + (", ..." if len(spec.choices) > 12 else "")
        return f"one of: {shown}"
    return f"{'a list' if spec.kind == 'list' else 'text'}: {spec.doc}" if spec.doc else spec.kind


def _described(problem: object) -> str:
    """A YAML error's description without what it quotes from the file (``str(error)`` holds a
    snippet of the file, and ``problem`` may quote a character or a name from it)."""
    text = _QUOTED.sub("'...'", str(problem)) if problem else "the file is not YAML"
    return excerpt(text, 120)
