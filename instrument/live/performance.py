"""A live performance put together: model, parameters, outputs, engine, and a clean end.

This is where ``play`` decides what sounds (MIDI port, built-in synth, recording) with the
fallbacks a performer expects: no MIDI here means no port, no sound device means no synth,
and with neither, the performance is recorded rather than refused. However it ends (its
limits, Ctrl-C, SIGTERM, an error), every sounding note is ended and the recording is closed.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from instrument.live.composer import Composer
from instrument.live.engine import Engine, Limits
from instrument.errors import UsageError
from instrument.music.phrasing import Phrasing, TempoMap, seconds_per_quarter
from instrument.model.network import FolkRNN
from instrument.outputs import Output
from instrument.live.models import ModelSwitch
from instrument.live.params import Parameters
from instrument.timing import Scheduler

log = logging.getLogger(__name__)


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


def open_outputs(choice: OutputChoice, params: Parameters, scheduler: Scheduler, tempo_map: TempoMap) -> Opened:
    """Open the outputs ``choice`` asks for; raises UsageError (one line) for a wrong request.

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
            port = open_midi_port(midi_target, choice.midi_api, scheduler, program=params.get("program"),
                                  channel=params.get("channel"), send_clock=choice.send_clock, tempo=tempo_map)
            opened.outputs.append(port)
            opened.messages.append(port.status())
        elif choice.send_clock:
            raise UsageError("--send-clock needs a MIDI output; drop --midi-out none or --send-clock")

        if choice.audio is not False:
            from instrument.music.timbres import find_timbre
            from instrument.outputs.sound import open_sound

            sound = open_sound(choice.synth, find_timbre(params.get("timbre")), choice.soundfont, choice.audio_device,
                               required=bool(choice.audio))
            opened.messages.append(sound.message)
            if sound.output is not None:
                opened.outputs.append(sound.output)
                if hasattr(sound.output, "set_timbre"):  # FluidSynth changes instrument live
                    params.listeners.append(lambda change, out=sound.output: change.name == "timbre" and
                                            out.set_timbre(find_timbre(change.value)))

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
            meter = params.get("meter.next")
            qpm = 60.0 / seconds_per_quarter(params.get("tempo"), meter if meter != "auto" else "4/4")
            opened.outputs.append(Recording(path, program=params.get("program"), channel=params.get("channel"), qpm=qpm))
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


class Performance:
    """One ``play`` run: an engine on its outputs, ended cleanly by a limit, a signal or an error."""

    def __init__(self, model: FolkRNN, params: Parameters, choice: OutputChoice, limits: Limits,
                 seed: int | None = None, model_path: str | None = None, models: dict[str, str] | None = None):
        """``models``: the models ``model.next`` may switch to, by name (none: one model plays)."""
        self.params = params
        self.scheduler = Scheduler()
        self.composer = Composer(model, params, seed=seed, model_path=model_path)
        if models:
            shape = (model.config.vocab_size, model.config.layers, model.config.hidden)
            self.composer.models = ModelSwitch(params.target("model.next"), models, shape, self.composer.prepare)
            params.listeners.append(self._on_model_next)
        self.phrasing = Phrasing(params)  # the tempo map, made first: the MIDI clock out follows it
        self.opened = open_outputs(choice, params, self.scheduler, self.phrasing.tempo)
        for out in self.opened.outputs:
            if hasattr(out, "progress"):  # a recording saves the tune being written as it goes
                out.progress = self.composer.tune_in_progress
        self.engine = Engine(self.composer, params, self.opened.outputs, self.scheduler, limits, self.phrasing)
        self.signal_received: str | None = None
        self._stop_asked = threading.Event()

    def _on_model_next(self, change) -> None:
        """``model.next`` moved (a controller's thread): start loading it now, so that it is
        ready by the next tune boundary."""
        if change.name == "model.next":
            self.composer.models.request(change.value)

    @property
    def record_error(self) -> str | None:
        """Why the recording is not (wholly) on disk, or None."""
        return next((out.error for out in self.opened.outputs if getattr(out, "error", None)), None)

    def follow_clock(self, qpm: float | None) -> None:
        """Tempo from an external MIDI clock (``--sync midi-clock``), through the parameter
        registry (``tempo.clock``: /state and the view show it); None gives it back to ``tempo``."""
        self.params.set("tempo.clock", qpm or 0.0, source="MIDI clock", smoothing_ms=0)

    def status(self) -> dict:
        """What runs, for /state: the step path and precision, and each output's line."""
        stepper = self.composer.stepper
        models = self.composer.models
        tune = self.composer.tune
        return {"tune": tune.number if tune is not None else 0,
                "step": {"backend": stepper.backend, "precision": stepper.precision},
                "model": {"playing": models.current, "since_tune": models.since_tune, "failed": dict(models.failed)}
                if models else {},
                "outputs": [out.status() for out in self.engine.outputs]}

    def request_stop(self, reason: str) -> None:
        """Safe from a signal handler: the main loop does the stopping."""
        self.signal_received = self.signal_received or reason
        self._stop_asked.set()

    def run(self, tick: Callable[[], None] | None = None, interval: float = 0.1,
            start_gate: threading.Event | None = None) -> str:
        """Play until the end; ``tick`` runs every ``interval`` s on this thread (the live view).

        SIGINT and SIGTERM stop the music cleanly (when called from the main thread). With a
        ``start_gate`` (an external clock's Start), the music waits for it.
        """
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda s, f: self.request_stop(signal.Signals(s).name))
        try:
            if self._stop_asked.is_set():  # asked before it began (a signal while it opened)
                return self.signal_received or "stopped"
            if start_gate is not None:
                while not start_gate.wait(interval):
                    if self._stop_asked.is_set():
                        return self.signal_received or "stopped"
                    if tick:
                        tick()
            # What opening built (torch, the model, the controllers: some 170,000 objects) leaves
            # the cyclic collector's view: a full collection of it holds the GIL for ~80 ms, which
            # the timing thread then waits out (measured: a note 108 ms late at a JACK listener).
            gc.freeze()
            self.engine.start()
            while not self.engine.finished.is_set():
                if self._stop_asked.wait(interval):
                    self.engine.stop(self.signal_received or "stopped")
                    break
                if tick:
                    tick()
        finally:
            self.engine.stop("interrupted")  # idempotent: keeps the first reason
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.engine.error is not None:
            return f"error: {self.engine.error}"
        return self.engine.stop_reason
