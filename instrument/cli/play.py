"""``run.py play``: the instrument, live. The one place where controllers, parameters, the
engine and the outputs are put together (data flows that way and never back)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from instrument.model import catalog, checkpoint
from instrument.cli import fail
from instrument.cli.options import add_performance_arguments, apply_start_state, choose_ensemble, ensemble_params, limits_from_args
from instrument.live.model_checks import fit_to_model, fitted_specs
from instrument.live.params import params_for_models
from instrument.timing import realtime_refused

HELP = "play live: tune after tune, to MIDI and the built-in synth, steered by controllers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_performance_arguments(parser)
    out = parser.add_argument_group("outputs (default: a virtual MIDI port and the built-in synth where they exist; "
                                    "with neither, a recording)")
    out.add_argument("--midi-out", metavar="virtual|NAME|none",
                     help="a virtual port named folk-instrument (default where MIDI works), a port whose name "
                          "contains NAME, or none")
    out.add_argument("--midi-api", default="auto", help="auto, alsa, jack, coremidi, winmm (default auto)")
    out.add_argument("--audio", dest="audio", action="store_true", default=None,
                     help="play through the built-in synth (default where a sound device exists)")
    out.add_argument("--no-audio", dest="audio", action="store_false", help="no built-in synth")
    out.add_argument("--audio-device", help="PortAudio device index or part of its name")
    out.add_argument("--record", metavar="FILE.mid", help="record the performance to FILE.mid and its tunes to FILE.abc")
    out.add_argument("--send-clock", action="store_true", help="send MIDI clock with start/stop on the MIDI output")
    out.add_argument("--sync", choices=("off", "none", "midi-clock", "link"),
                     help="midi-clock: wait for an incoming clock's Start, follow its tempo, stop at its Stop; "
                          "link: join the Ableton Link session on the local network (tempo both ways, bars on the "
                          "session's grid); off (or none, the default): keep our own time")
    out.add_argument("--listen", choices=("off", "continue", "answer", "along"),
                     help="play with a musician on MIDI in (--midi-in): continue (they play a tune's opening, "
                          "the instrument goes on with it), answer (each phrase answered with as many bars) or along "
                          "(they lead, the instrument follows a beat behind with notes of its own)")
    out.add_argument("--link-start-stop", action="store_true",
                     help="with --sync link: a peer's Stop silences the music and its Start begins a tune at the next bar")
    out.add_argument("--clock-in", default="virtual", metavar="virtual|NAME",
                     help="with --sync midi-clock: our virtual input port (default) or the output port to listen to")
    out.add_argument("--activity-osc", metavar="HOST:PORT",
                     help="publish the network's activity as OSC (/activity/...) to HOST:PORT, decimated")
    view = parser.add_argument_group("view")
    view.add_argument("--quiet", action="store_true", help="plain log lines instead of the live view")
    view.add_argument("--verbose", action="store_true", help="debug logging")
    view.add_argument("--web", metavar="[HOST:]PORT",
                      help="serve the web page (sheet music, piano roll, the network, controls, XY pad) on HOST:PORT "
                           "(default 127.0.0.1:8765; on any other address control needs the token printed at start)")
    view.add_argument("--no-web", action="store_true", help="no web page")
    from controllers.rig import add_controller_arguments

    add_controller_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from controllers.rig import Controllers
    from instrument.live.logs import start_logging
    from instrument.live.performance import Performance
    from instrument.outputs.opening import OutputChoice

    limits = limits_from_args(args)
    models = catalog.choices(args.model)  # what model.next may switch between
    first = catalog.name_of(args.model)
    if first not in models:
        checkpoint.resolve(args.model)  # says which shipped model is missing
    model, meta, where = checkpoint.load_or_default(models[first])
    from patches import DEFAULT as DEFAULT_PATCH

    ensemble = choose_ensemble(args, args.patch or DEFAULT_PATCH)
    # the models model.next switches between share one shape (instrument/live/models.py), so the
    # first one's unit numbers, layers and set names are the checks for all of them
    specs = fitted_specs(params_for_models(models, first), model.config.hidden, model.config.layers, where).values()
    params = ensemble_params(specs, ensemble)
    fit_to_model(params, model.config.hidden, model.config.layers, where)
    _check_arguments(params, args)  # a wrong argument is named before any port or device opens
    pipe = start_logging(args.verbose)
    controllers = follower = performance = publisher = web = None
    early = _EarlyStop()  # SIGTERM or Ctrl-C while the instrument opens (a kernel build can take seconds)
    try:
        controllers = Controllers.open(params, args)  # the patch's start state first (it may choose the model) ...
        apply_start_state(params, args)  # ... then the command line's, which wins
        _apply_sync(params, args)
        if args.model is not None:
            params.set("model.next", first, source="command line")
        if params.target("model.next") != first:  # the patch chose another model
            model, meta, where = checkpoint.load_or_default(models[params.target("model.next")])
        choice = OutputChoice(midi_out=args.midi_out, midi_api=args.midi_api, audio=args.audio,
                              audio_device=args.audio_device, synth=args.synth, soundfont=args.soundfont, record=args.record,
                              send_clock=args.send_clock)
        performance = Performance(model, params, choice, limits, seed=args.seed,
                                  model_path=where, models=models, ensemble=ensemble)
        early.hand_to(performance)
        if controllers.midi is not None:  # a musician's notes reach the listener while listen is on
            controllers.midi.hear = performance.listener.hear
        controllers.publish_status(performance.status)
        publisher, tap = _activity(args, performance, model)
        web = _web(args, performance, controllers, tap, model, meta.get("name") or where)
        for line in performance.opened.messages:
            print(line, file=sys.stderr)
        refused = realtime_refused()
        if refused:
            print(f"no real-time priority ({refused}): the timing thread and the built-in sound run as normal "
                  "threads, so a busy machine can make notes late by milliseconds and the sound drop out", file=sys.stderr)
        gate = None
        if params.target("sync") == "midi-clock":
            from controllers.midi_clock import MidiClockFollower

            gate = threading.Event()
            follower = MidiClockFollower(args.clock_in, args.midi_api, on_tempo=performance.follow_clock,
                                         on_start=gate.set, on_continue=gate.set,
                                         on_stop=lambda: performance.request_stop("MIDI clock stop"),
                                         flag="--clock-in")
            print(f"waiting for MIDI clock Start on {follower.port}", file=sys.stderr)
        link = performance.link.status()
        if link.get("waiting"):
            print("waiting for a Link peer's Start (link.start_stop is on)", file=sys.stderr)
        view = _view(args, performance, pipe, controllers, meta.get("name") or where, web)
        with view:
            reason = performance.run(view.tick, start_gate=gate)
        engine = performance.engine
        summary = f"{reason}: {engine.notes_played} notes, {engine.bars} bars"
        if engine.late_notes:
            summary += f", {engine.late_notes} composed late (by up to {engine.late_worst * 1000:.0f} ms)"
        summary += "".join(f"; {out.status()}" for out in engine.outputs if out.name == "synth")  # its counts
        failed = performance.record_error
        if failed:
            summary += f"; the recording FAILED ({failed})"
        elif performance.opened.record_path:
            summary += f"; recorded to {performance.opened.record_path}"
        if follower is not None:
            summary += f"; {follower.status()}, {follower.input.received} messages"
        print(summary, file=sys.stderr)
        return 1 if reason.startswith("error") or failed else 0
    finally:
        early.restore()
        if performance is not None:
            performance.engine.stop("interrupted")
            performance.link.close()
            performance.listener.close()
        for part in (web, follower, controllers, publisher):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    pass
        pipe.close()


def _apply_sync(params: Parameters, args: argparse.Namespace) -> None:
    """``--sync`` and ``--link-start-stop`` over the patch's start state."""
    if args.sync:
        params.set("sync", "off" if args.sync == "none" else args.sync, source="command line", clamp=False)
    if args.link_start_stop:
        params.set("link.start_stop", True, source="command line", clamp=False)
    if args.listen:
        params.set("listen", args.listen, source="command line", clamp=False)


def _check_arguments(params: Parameters, args: argparse.Namespace) -> None:
    """Every argument checked before anything opens, so the error named is the argument's (a bad
    ``--mode`` must not show up as a busy ``--myo-port``). The start state is set here once, which
    checks it, and set again after the patch's, which it must win over."""
    apply_start_state(params, args)
    if args.web and not args.no_web:
        from instrument.web.server import parse_address

        parse_address(args.web)
    if args.activity_osc:
        _osc_target(args.activity_osc)
    if args.soundfont:
        from instrument.outputs.fluid import find_soundfont

        find_soundfont(args.soundfont)


def _osc_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"--activity-osc takes HOST:PORT, e.g. 127.0.0.1:9001, not {text!r}")
    return host or "127.0.0.1", int(port)


class _EarlyStop:
    """SIGINT and SIGTERM before the performance runs: remembered, then handed to it (which stops
    at once), instead of killing the process with nothing closed."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.performance = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._caught)

    def _caught(self, number, frame) -> None:
        self.reason = self.reason or signal.Signals(number).name
        if self.performance is not None:
            self.performance.request_stop(self.reason)

    def hand_to(self, performance) -> None:
        self.performance = performance
        if self.reason:
            performance.request_stop(self.reason)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _activity(args, performance, model):
    """A live tap on the network for the views (terminal and web) and, with --activity-osc, an
    OSC publisher. Returns (publisher or None, tap or None)."""
    from instrument.analysis.taps import ActivityTap, OscPublisher

    if args.quiet and not args.activity_osc and args.no_web:
        return None, None
    web = not args.no_web  # the page's heatmap: every unit, twice as many columns
    tap = ActivityTap(layers=model.config.layers, hidden=model.config.hidden, every=2 if web else 4, units=web)
    performance.composer.tap = tap
    if not args.activity_osc:
        return None, tap
    publisher = OscPublisher(tap, *_osc_target(args.activity_osc)).start()
    publisher.close = publisher.stop  # closed with the other parts
    return publisher, tap


def _web(args, performance, controllers, tap, model, model_name: str):
    """The web page (``--web``, on by default): a view of the performance and a controller
    through the patch. The default port taken (another instrument) is no error: the next
    ones are tried, then the page is left out with a note; a port asked for must open."""
    if args.no_web:
        return None
    from controllers.report import Reporter
    from controllers.web import WebControl, pad_labels
    from instrument.errors import UsageError
    from instrument.web.live import LiveSource
    from instrument.web.server import DEFAULT_PORT, DEFAULT_PORTS_TRIED, WebServer, parse_address

    host, port = parse_address(args.web) if args.web else ("127.0.0.1", DEFAULT_PORT)
    control = WebControl(performance.params, controllers.router, Reporter("Web", controllers.activity))
    activity = lambda: [f"{src}: {what}" for _, src, what in list(controllers.activity)]  # noqa: E731
    source = LiveSource(performance, tap.subscribe(64) if tap is not None else None,
                        status=lambda: [*controllers.status(), control.status()], controller_activity=activity,
                        pads=lambda: pad_labels(controllers.router), model_name=model_name,
                        layers=model.config.layers, hidden=model.config.hidden)
    server = WebServer(source, control, host, port, try_next=0 if args.web else DEFAULT_PORTS_TRIED)
    try:
        server.start()
    except UsageError as error:
        source.close()
        if args.web:
            raise
        print(f"no web page: {error}", file=sys.stderr)
        return None
    print(f"web page: {server.url}" + ("  (the token lets the page control; anyone may look)" if server.token else ""),
          file=sys.stderr)
    closing = server.close
    server.close = lambda: (closing(), source.close())  # closed with the other parts
    return server


def _view(args, performance, pipe, controllers, model_name: str, web=None):
    from instrument.live.view import LiveView, QuietView

    status = (lambda: [*controllers.status(), web.status()]) if web is not None else controllers.status
    activity = lambda: [f"{src}: {what}" for _, src, what in list(controllers.activity)]  # noqa: E731
    if args.quiet or not sys.stderr.isatty():
        return QuietView(performance, status)
    return LiveView(performance, pipe, status, activity, model_name=model_name)

