"""An ensemble: the voices that play one tune together, each with its role, instrument and channel.

A session is several players on one tune: the network writes the tune (the ``lead``), more rows
of the same network play it with their own variations (``follow``), and a guitar's chords and a
piper's drone are made from the lead's notes (``chords``, ``drone``; docs/design.md §11). Voices
are numbered from 1 in the ensemble's order, the lead first; ``voice.N.X`` are a voice's
parameters (``instrument.live.params``). The shipped ensembles are YAML files in
``patches/ensembles/`` (read by ``controllers.patch``, which reports every mistake at its line);
``SOLO``, the single line the instrument always played, is also the default here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from instrument.live.params import ParamSpec, voice_specs
from instrument.music.timbres import find_timbre

NETWORK_ROLES = ("lead", "follow")  # rows of the stepper
MAX_VOICES = 8
DRUM_CHANNEL = 10  # General MIDI's percussion: no voice plays there


@dataclass(frozen=True)
class VoiceSpec:
    """One voice of an ensemble, as the ensemble file gives it."""

    number: int  # 1 = the lead
    role: str  # lead | follow | chords | drone
    timbre: str | None  # a folk timbre's name (music/timbres.py); None: the ``timbre`` parameter's
    channel: int  # MIDI channel 1..16
    pan: float = 0.0  # -1 left .. 1 right
    start: tuple[tuple[str, Any], ...] = ()  # its start values (names within the voice)
    name: str = ""  # how tracks and pages name it: the role, numbered where the role repeats

    @property
    def network(self) -> bool:
        """Whether the network plays it (a stepper row): the lead and followers."""
        return self.role in NETWORK_ROLES

    def param(self, name: str) -> str:
        """The full parameter name of this voice's ``name``: the lead's are unnumbered."""
        if self.role == "lead" and name not in ("pan", "mute"):
            return name
        return f"voice.{self.number}.{name}"


@dataclass(frozen=True)
class Ensemble:
    """The voices of a performance, the lead first."""

    name: str
    voices: tuple[VoiceSpec, ...]
    path: Path | None = None

    @property
    def lead(self) -> VoiceSpec:
        return self.voices[0]

    @property
    def network(self) -> tuple[VoiceSpec, ...]:
        """The voices the network plays, in stepper-row order (row 0 the lead)."""
        return tuple(v for v in self.voices if v.network)

    def of(self, role: str) -> tuple[VoiceSpec, ...]:
        return tuple(v for v in self.voices if v.role == role)

    def voice(self, number: int) -> VoiceSpec:
        return self.voices[number - 1]

    def param_specs(self, specs: Iterable[ParamSpec]) -> tuple[ParamSpec, ...]:
        """The voices' own parameters (``voice.N.X``), ranges from ``specs`` (fitted to the model)."""
        return voice_specs(((v.number, v.role) for v in self.voices), specs)

    def start_values(self) -> list[tuple[str, Any]]:
        """Every voice's start values as parameter names and values: its timbre, channel (the
        lead's; the others' are fixed), pan and ``start:`` entries, in order."""
        out: list[tuple[str, Any]] = []
        for v in self.voices:
            if v.timbre is not None:
                out.append((v.param("timbre"), v.timbre))
                if v.role == "lead":  # MIDI out plays the lead's instrument too (other voices: their timbre's)
                    out.append(("program", find_timbre(v.timbre).program))
            if v.role == "lead" and v.channel != 1:
                out.append(("channel", v.channel))
            if v.pan:
                out.append((v.param("pan"), v.pan))
            out += [(v.param(name), value) for name, value in v.start]
        return out

    def describe(self) -> str:
        """One line per voice, as ``--ensemble list`` shows it."""
        return "; ".join(f"{v.number} {v.role} {v.timbre or 'timbre parameter'} ch {v.channel}"
                         + (f" pan {v.pan:+g}" if v.pan else "") for v in self.voices)


def voice_names(roles: list[str]) -> list[str]:
    """Each voice's name: its role, with its number where the role repeats (``follow 2``)."""
    return [role if roles.count(role) == 1 else f"{role} {n}" for n, role in enumerate(roles, 1)]


def default_channels(given: list[int | None]) -> list[int]:
    """Channels in order for voices that give none: 1, 2, 3, ... skipping taken ones and 10."""
    taken = {c for c in given if c is not None}
    out, candidate = [], 1
    for channel in given:
        if channel is None:
            while candidate in taken or candidate == DRUM_CHANNEL:
                candidate += 1
            channel = candidate
            taken.add(channel)
        out.append(channel)
    return out


SOLO = Ensemble("solo", (VoiceSpec(1, "lead", None, 1, name="lead"),))
