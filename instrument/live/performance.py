"""A live performance put together: model, parameters, outputs, engine, and a clean end.

The outputs are opened by ``instrument.outputs.opening`` (what sounds, with a performer's
fallbacks) from the parameters' start values; the live parameters that steer an output as it
plays (``timbre``, ``gain``) are wired to it here. However it ends (its limits, Ctrl-C, SIGTERM, an error),
every sounding note is ended and the recording is closed.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from typing import Callable

from instrument.live.composer import Composer
from instrument.live.engine import Engine, Limits
from instrument.live.ensemble import SOLO, Ensemble
from instrument.live.link import LinkSync, LinkTempoMap
from instrument.live.listen import Listener
from instrument.music.phrasing import Phrasing, TempoMap, seconds_per_quarter
from instrument.music.timbres import find_timbre
from instrument.model.network import FolkRNN
from instrument.outputs import VoiceSound
from instrument.outputs.opening import OutputChoice, open_outputs
from instrument.live.models import ModelSwitch
from instrument.live.params import Parameters
from instrument.timing import Scheduler, name_native_threads

log = logging.getLogger(__name__)


def voice_sounds(ensemble: Ensemble, params: Parameters) -> list[VoiceSound]:
    """What the outputs need of each voice, from the parameters as they start: the lead's
    channel, program and timbre are its unnumbered parameters, the others' their ``voice.N.*``
    (the program of their timbre), each with its pan."""
    out = []
    for v in ensemble.voices:
        if v.role == "lead":
            out.append(VoiceSound(1, v.name, int(params.get("channel")), find_timbre(params.get("timbre")),
                                  int(params.get("program")), float(params.get("voice.1.pan"))))
        else:
            timbre = find_timbre(params.get(v.param("timbre")))
            out.append(VoiceSound(v.number, v.name, v.channel, timbre, timbre.program, float(params.get(v.param("pan")))))
    return out


def phrasing_for(params: Parameters, ensemble: Ensemble, start_time: float = 0.0, tempo: TempoMap | None = None) -> Phrasing:
    """The phrasing of an ensemble's voices: each on its channel, the drone held its whole length."""
    return Phrasing(params, start_time, channels={v.number: v.channel for v in ensemble.voices[1:]},
                    sustained=frozenset(v.number for v in ensemble.of("drone")), tempo=tempo)


def lookahead_ms(composer: Composer, phrasing: Phrasing) -> float:
    """How far ahead of the music the lead is composed now (the latency a control of the lead
    has beyond the next note): one beat group while chords hear each group whole, else 0."""
    ahead = composer.lookahead_beats
    return 1000.0 * ahead * phrasing.tempo.spq if ahead else 0.0


class Performance:
    """One ``play`` run: an engine on its outputs, ended cleanly by a limit, a signal or an error."""

    def __init__(self, model: FolkRNN, params: Parameters, choice: OutputChoice, limits: Limits,
                 seed: int | None = None, model_path: str | None = None, models: dict[str, str] | None = None,
                 ensemble: Ensemble = SOLO):
        """``models``: the models ``model.next`` may switch to, by name (none: one model plays);
        ``ensemble``: the voices (``voice.N.*`` must be among ``params``)."""
        self.params = params
        self.ensemble = ensemble
        self.scheduler = Scheduler()
        self.composer = Composer(model, params, seed=seed, model_path=model_path, ensemble=ensemble)
        if models:
            shape = (model.config.vocab_size, model.config.layers, model.config.hidden)
            self.composer.models = ModelSwitch(params.target("model.next"), models, shape, self.composer.prepare)
            params.listen(self._on_model_next, "model.next")
        meter = params.get("meter.next")
        # the tempo map, made first (the MIDI clock out follows it); a Link session may tie it
        tempo_map = LinkTempoMap(0.0, seconds_per_quarter(params.get("tempo"), meter if meter != "auto" else "4/4"))
        self.phrasing = phrasing_for(params, ensemble, tempo=tempo_map)
        qpm = 60.0 / tempo_map.spq
        sounds = voice_sounds(ensemble, params)
        self.composer.programs = {v.voice: v.program if v.voice > 1 else v.timbre.program for v in sounds}
        self.opened = open_outputs(choice, self.scheduler, self.phrasing.tempo, program=params.get("program"),
                                   channel=params.get("channel"), timbre=find_timbre(params.get("timbre")),
                                   gain_db=params.get("gain"), qpm=qpm, voices=sounds if len(sounds) > 1 else ())
        timbres = {v.param("timbre"): v.number for v in ensemble.voices}
        pans = {v.param("pan"): v.number for v in ensemble.voices}
        for out in self.opened.outputs:
            # each listener hears only the parameters it needs (a flood of others never reaches the sound)
            if hasattr(out, "set_timbre"):  # FluidSynth changes instrument live, each voice its own
                params.listen(lambda change, out=out: out.set_timbre(find_timbre(change.value), timbres[change.name]),
                              *timbres)
            if hasattr(out, "set_program"):  # a MIDI port: the DAW hears a voice's instrument change
                params.listen(lambda change, out=out: self._program_change(out, change, timbres), "program", *timbres)
            if hasattr(out, "set_pan"):
                params.listen(lambda change, out=out: out.set_pan(pans[change.name], change.value), *pans)
            if hasattr(out, "set_gain"):  # the built-in sound's level (MIDI out is the DAW's to set)
                params.listen(lambda change, out=out: out.set_gain(change.value), "gain")
        for out in self.opened.outputs:
            if hasattr(out, "progress"):  # a recording saves the tune being written as it goes
                out.progress = self.composer.tune_in_progress
        self.engine = Engine(self.composer, params, self.opened.outputs, self.scheduler, limits, self.phrasing)
        self.link = LinkSync(params, tempo_map, self.engine)  # joins a Link session only when sync is link
        self.listener = Listener(params, self.engine, model, seed)  # plays with a musician while listen is on
        self.signal_received: str | None = None
        self._stop_asked = threading.Event()

    @staticmethod
    def _program_change(out, change, timbres: dict[str, int]) -> None:
        """The lead's ``program`` or another voice's ``timbre`` moved: its MIDI program now (the
        lead's timbre is the built-in sound's only; its MIDI program is ``program``)."""
        if change.name == "program":
            out.set_program(1, int(change.value))
        elif change.name in timbres and timbres[change.name] > 1:
            out.set_program(timbres[change.name], find_timbre(change.value).program)

    def _on_model_next(self, change) -> None:
        """``model.next`` moved (a controller's thread): start loading it now, so that it is
        ready by the next tune boundary."""
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
                "step": {"backend": stepper.backend, "precision": stepper.precision, "voices": stepper.voices},
                "ensemble": {"name": self.ensemble.name, "lookahead_ms": round(self.lookahead_ms(), 1),
                             "voices": [{"voice": v.number, "role": v.role, "name": v.name, "channel": v.channel}
                                        for v in self.ensemble.voices]},
                "model": {"playing": models.current, "since_tune": models.since_tune, "failed": dict(models.failed)}
                if models else {},
                "outputs": [out.status() for out in self.engine.outputs],
                "sync": self.link.status(), "listen": self.listener.status()}

    def lookahead_ms(self) -> float:
        return lookahead_ms(self.composer, self.phrasing)

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
                name_native_threads()  # threads started since (a model loading): named where top -H shows them
                if tick:
                    tick()
        finally:
            self.engine.stop("interrupted")  # idempotent: keeps the first reason
            self.link.close()
            self.listener.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.engine.error is not None:
            return f"error: {self.engine.error}"
        return self.engine.stop_reason
