"""Opening what a performance sounds through: MIDI port, built-in sound, recording.

This is where ``play`` decides what sounds, with the fallbacks a performer expects: no MIDI here
means no port, no sound device means no synth, and with neither, the performance is recorded
rather than refused. It takes plain start values (program, channel, timbre, tempo), not the live
parameters: outputs never import the live instrument (docs/design.md §6).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from instrument.errors import UsageError
from instrument.music.phrasing import TempoMap
from typing import Sequence

from instrument.music.timbres import GmTimbre
from instrument.outputs import Output, VoiceSound
from instrument.timing import Scheduler


@dataclass
class OutputChoice:
    """What the command line asked for; ``None`` means "the default for this machine"."""

    midi_out: str | None = None  # virtual | NAME | none
    midi_api: str = "auto"
    audio: bool | None = None
    audio_device: str | None = None
    synth: str = "auto"  # auto | fluidsynth | numpy (instrument.outputs.sound)
    soundfont: str | None = None
    record: str | None = None
    send_clock: bool = False


@dataclass
class Opened:
    outputs: list[Output] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # what the performer is told at the start
    record_path: Path | None = None


def default_take_path(now: float | None = None) -> Path:
    """Where a performance is recorded when nothing can sound: ./takes/take-DATE-TIME.mid."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return Path("takes") / f"take-{stamp}.mid"


def open_outputs(choice: OutputChoice, scheduler: Scheduler, tempo_map: TempoMap, *, program: int = -1,
                 channel: int = 1, timbre: GmTimbre, gain_db: float = 0.0, qpm: float = 120.0,
                 voices: Sequence[VoiceSound] = ()) -> Opened:
    """Open the outputs ``choice`` asks for; raises UsageError (one line) for a wrong request.
    ``program``, ``channel``, ``timbre``, ``gain_db`` (the built-in sound's): what they start
    with; ``qpm``: the recording's tempo; ``voices``: an ensemble's (each on its own channel
    of the MIDI port, its own instrument in FluidSynth, its own track in the recording).

    Asked-for outputs that cannot open are errors; defaults that cannot open are skipped with
    a note. With neither MIDI nor audio, the take is recorded to ``default_take_path()``.
    """
    from instrument.midi.ports import midi_available
    from instrument.outputs.midi_port import open_midi_port

    opened = Opened()
    try:
        midi_target = choice.midi_out
        if midi_target is None:
            ok, why = midi_available()
            midi_target = "virtual" if ok else "none"
            if not ok:
                opened.messages.append(f"no MIDI here ({why}); MIDI output off")
        if midi_target.strip().lower() != "none":
            port = open_midi_port(midi_target, choice.midi_api, scheduler, program=program, channel=channel,
                                  send_clock=choice.send_clock, tempo=tempo_map, voices=voices)
            opened.outputs.append(port)
            opened.messages.append(port.status())
        elif choice.send_clock:
            raise UsageError("--send-clock needs a MIDI output; drop --midi-out none or --send-clock")

        if choice.audio is not False:
            from instrument.outputs.sound import open_sound

            sound = open_sound(choice.synth, timbre, choice.soundfont, choice.audio_device, required=bool(choice.audio),
                               gain_db=gain_db, voices=voices)
            opened.messages.append(sound.message)
            if sound.output is not None:
                opened.outputs.append(sound.output)

        record = choice.record
        if record is None and not opened.outputs:
            record = str(default_take_path())
            opened.messages.append(f"neither MIDI nor audio can play here: recording to {record} instead")
        if record is not None:
            from instrument.outputs.recording import Recording

            path = Path(record)
            if path.suffix.lower() != ".mid":
                raise UsageError(f"--record {record}: give a .mid file name (the tunes go beside it as .abc)")
            if choice.record is None:
                path.parent.mkdir(parents=True, exist_ok=True)
            opened.outputs.append(Recording(path, program=program, channel=channel, qpm=qpm, voices=voices))
            opened.record_path = path
            if choice.record is not None:
                opened.messages.append(f"recording to {path} and {path.with_suffix('.abc')}")
    except BaseException:
        for out in opened.outputs:
            try:
                out.close(0.0)
            except Exception:
                pass
        raise
    return opened
