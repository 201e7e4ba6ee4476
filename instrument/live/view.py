"""What the performer sees while ``play`` runs: the tune being written, where the music is,
every live parameter and what moved it last, controller activity, outputs and warnings.

It runs on the main thread a few times a second and only reads: lists and dicts other
threads append to are copied, never locked, so drawing can never delay a note. ``QuietView``
gives plain log lines instead (``--quiet``, or when the output is not a terminal).
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Callable, Sequence

from instrument.live.performance import Performance, lookahead_ms

log = logging.getLogger(__name__)

Lines = Callable[[], Sequence[str]]


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
        return text if len(text) <= 24 else text[:21] + "..."
    return str(value)


def voice_lines(performance: Performance) -> list[str]:
    """One line per voice of an ensemble (none for a solo): number, role, instrument, channel,
    mute, and what steers it: its temperature, a follower's cohesion and ablation; then how far
    ahead the lead is composed while chords hear their groups whole."""
    ensemble, params = performance.composer.ensemble, performance.params
    if len(ensemble.voices) < 2:
        return []
    lines = []
    for v in ensemble.voices:
        parts = [f"{v.number} {v.name:<8}", f"{params.get(v.param('timbre')):<14}", f"ch {v.channel:<2}"]
        if params.get(f"voice.{v.number}.mute"):
            parts.append("MUTED")
        if v.network:
            parts.append(f"T {params.get(v.param('temperature')):.2f}")
            depth = params.get(v.param("ablation.depth"))
            if depth:
                parts.append(f"ablation {depth:.2f} L{params.get(v.param('ablation.layer'))}")
        if v.role == "follow":
            parts.append(f"cohesion {params.get(v.param('cohesion')):.2f}")
        lines.append("  ".join(parts))
    ahead = lookahead_ms(performance.composer, performance.engine.phrasing)
    if ahead:
        lines.append(f"chords look ahead {ahead / 1000:.2f} s (the lead is composed one beat group ahead)")
    return lines


def onset_p99_ms(performance: Performance, last: int = 500) -> float | None:
    for _ in range(3):  # the timing thread may append while this reads (bench/soak.py saw it once in 10 min)
        try:
            errors = list(itertools.islice(reversed(performance.scheduler.errors), last))  # never a copy of all 100,000
            break
        except RuntimeError:  # "deque mutated during iteration": read again
            errors = []
    if not errors:
        return None
    errors.sort()
    return 1000.0 * errors[min(len(errors) - 1, int(0.99 * len(errors)))]


class QuietView:
    """Plain log lines: each new tune, each parameter change, a status line every ``every`` s."""

    def __init__(self, performance: Performance, controller_status: Lines = lambda: (), every: float = 30.0):
        self.p = performance
        self.controller_status = controller_status
        self.every = every
        self._tune = 0
        self._version = performance.params.version
        self._values = performance.params.snapshot()
        self._last = time.monotonic()

    def __enter__(self) -> "QuietView":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def tick(self) -> None:
        p, params = self.p, self.p.params
        tune = p.composer.tune
        if tune is not None and tune.number != self._tune and tune.meter:
            self._tune = tune.number
            log.info("tune %d: M:%s K:C%s", tune.number, tune.meter, tune.mode)
        if params.version != self._version:
            self._version = params.version
            values = params.snapshot()
            for name, value in values.items():
                if value != self._values.get(name):
                    log.info("%s = %s (%s)", name, _value(value), "trigger" if params.specs[name].kind == "trigger" else params.source(name))
            self._values = values
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            p99 = onset_p99_ms(p)
            log.info("%d notes, %d bars; onset p99 %s; %s", p.engine.notes_played,
                     p.engine.phrasing.bars,
                     "n/a" if p99 is None else f"{p99:.2f} ms", "; ".join([*voice_lines(p), *self.controller_status()]))


class LiveView:
    """A full-screen ``rich`` view, redrawn ``fps`` times a second."""

    def __init__(self, performance: Performance, log_pipe, controller_status: Lines = lambda: (),
                 controller_activity: Lines = lambda: (), model_name: str = "", fps: float = 2.0):
        from rich.console import Console
        from rich.live import Live

        self.p = performance
        self.log_pipe = log_pipe
        self.controller_status = controller_status
        self.controller_activity = controller_activity
        self.model_name = model_name
        self.console = Console(stderr=True)
        self._live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stderr=False)
        self._period = 1.0 / fps
        self._next = 0.0
        self._started = time.monotonic()
        self._log_lines: list[str] = []

    def __enter__(self) -> "LiveView":
        self.log_pipe.sink = self._log_lines.append  # log lines wait until the view closes
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.tick(force=True)
        self._live.__exit__(*exc)
        self.log_pipe.sink = None
        for line in self._log_lines[-20:]:
            self.console.print(line, markup=False, highlight=False)

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self._period
        self._live.update(self._render(now), refresh=True)

    def _render(self, now: float):
        from rich.columns import Columns
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        p, params = self.p, self.p.params
        engine = p.engine
        tune = p.composer.tune
        bars = engine.phrasing.bars
        p99 = onset_p99_ms(p)
        head = Text()
        head.append("folk-instrument ", style="bold")
        models = p.composer.models  # the model writing now, once model.next may switch it
        head.append(f"{models.current if models else self.model_name}  {time.strftime('%M:%S', time.gmtime(now - self._started))}  ")
        if tune is not None:
            head.append(f"tune {tune.number}  M:{tune.meter or '?'}  K:C{tune.mode or '?'}  ", style="cyan")
        clock_qpm = params.get("tempo.clock")
        tempo = f"{clock_qpm:.1f} qpm (MIDI clock)" if clock_qpm else f"{params.get('tempo'):.0f} BPM"
        head.append(f"bar {bars}  notes {engine.notes_played}  tempo {tempo}  ")
        head.append(f"onset p99 {'n/a' if p99 is None else f'{p99:.2f} ms'}  ")
        step = p.composer.stepper
        head.append(f"step {step.backend} {step.precision}", style="yellow" if step.backend != "fast" else "")
        if engine.resyncs:
            head.append(f"  resyncs {engine.resyncs}", style="yellow")
        if params.get("hold"):
            head.append("  HOLD", style="bold magenta")
        for line in (p.link.line(), p.listener.line()):
            if line:
                head.append(f"  {line}", style="green")

        body = list(tune.body) if tune is not None else []
        abc = " ".join(body[-120:])
        tune_panel = Panel(Text(abc or "(starting)", overflow="fold"), title="the tune as it is written (ABC)",
                           height=6)

        table = Table.grid(padding=(0, 1))
        for _ in range(2):
            table.add_column(style="bold", no_wrap=True)
            table.add_column(no_wrap=True)
            table.add_column(style="dim", no_wrap=True)
        cells = []
        for name, spec in params.specs.items():
            if spec.kind == "trigger":
                value, source = f"x{params.fired(name)}", ""
            else:
                value = _value(params.get(name)) + (f" {spec.unit}" if spec.unit else "")
                source = params.source(name)
            cells.append((name, value, source))
        half = (len(cells) + 1) // 2
        for left, right in zip(cells[:half], cells[half:] + [("", "", "")]):
            table.add_row(*left, *right)

        status = voice_lines(p) + [o.status() for o in engine.outputs]
        status += list(self.controller_status())
        side = Group(Text("\n".join(status) or "no outputs"),
                     Text("\n".join(list(self.controller_activity())[-6:]), style="dim"))
        tap = p.composer.tap
        activity = getattr(tap, "latest", None)
        if activity is not None:
            parts = [f"L{layer.layer} |h| {layer.mean_abs:.2f} bar {layer.bar_band:.2f}" for i, layer in enumerate(activity.layers)]
            head.append("\n" + "   ".join(parts) + f"   entropy {activity.entropy:.2f} nats", style="green")
        warnings = list(self.log_pipe.recent)[-5:]
        return Group(head, tune_panel,
                     Columns([Panel(table, title="live parameters (value, last moved by)"),
                              Panel(side, title="voices, outputs and controllers")]),
                     Text("\n".join(warnings), style="yellow") if warnings else Text(""))
