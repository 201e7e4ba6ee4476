"""What a listener hears from ``play``'s built-in sound under a storm of controls: dropouts counted
from outside, per engine, against a bare client under the same storm.

For each JACK period asked for (default 256 and 64 frames at 48 kHz), a JACK dummy server of its
own is started (real-time, ``-R``, where allowed); then, in the same run and for as long each:

- baseline: both floods aimed at a stub listener (``bench/harness/floods.py``: it reads the OSC
  datagrams and the MIDI CCs and throws them away) while a bare JACK client (no process callback:
  no Python in the server's cycle) counts the server's xruns: the machine as loaded as during play,
  without the instrument;
- for each engine (FluidSynth, the numpy synth): ``play`` runs in a pseudo-terminal, so its live
  view is drawn as a performer sees it, with MIDI out to a JACK port, under a flood of ``--osc-rate``
  OSC messages a second and ``--midi-rate`` MIDI CCs a second into its MIDI input; the bare client
  counts xruns meanwhile.

Reported per engine: its xruns against the baseline's, the engine's own underruns and late notes
(from ``play``'s closing line), notes composed late, the process's CPU (user + system time over wall
time; 100% = one core), and CPU per thread of ``play`` and of the JACK server (threads named in the
kernel: model, timing, osc-server, midi-in, web, MainThread is the view, synth-render, fluid-jack and
synth-jack the audio threads, midi-jack the MIDI ports' JACK threads). For each real-time thread it
also gives how often it blocked per JACK cycle: a JACK client's thread blocks once a cycle, waiting
for the next, so more is a wait inside its cycle (a mutex a Python thread held). The load average
is printed before and after: the figures are only as quiet as the machine.

With ``--gil`` (needs ``py-spy``), the numpy run is also sampled from outside (without pausing
it: a paused process misses JACK cycles) and the share of samples in which each thread held the
GIL is printed: which threads keep the audio waiting.

    python bench/audio.py [--minutes 10] [--frames 256,64] [--synths fluidsynth,numpy] [--tempo 200]
                          [--osc-rate 2000] [--midi-rate 1000] [--ensemble trio] [--gil] [--json]

``--ensemble trio`` (or any ensemble) plays the band: FluidSynth sounds each voice with its own
instrument on its own channel (the trio: fiddle, flute and the guitar's chords, up to four notes
a stroke beside the two melodies), each voice on its own channel of the MIDI port too.

Targets (docs/audio.md), 10 minutes at 256 frames with the view drawn: at a performer's rate
(``--osc-rate 500 --midi-rate 200``) both engines no more xruns than the bare client and no late
notes; at the stress rate (2,000 + 1,000, the default) at most 1 more xrun per 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bench.harness.audio import JackRecorder  # noqa: E402
from bench.harness.floods import MIDI_PORT, midi_flood, osc_flood, stub_listener  # noqa: E402
from bench.harness.jack_server import start_jack, stop_jack  # noqa: E402
from bench.harness.net import free_udp_port  # noqa: E402
from bench.harness.osc import wait_until_playing  # noqa: E402
from bench.harness.threads import by_name, sample, usage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MIDI_DELAY_S = 4.0  # the MIDI flood waits this long for its listener to connect


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Pty:
    """A pseudo-terminal for ``play``, read as it writes (the view would block on a full one)."""

    def __init__(self) -> None:
        import pty

        self.master, self.slave = pty.openpty()
        self.screen = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)

    def start(self) -> None:
        os.close(self.slave)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.screen.extend(chunk)

    def text(self) -> str:
        self._reader.join(2.0)
        os.close(self.master)
        return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", self.screen.decode(errors="replace"))


def storm(server: str, jackd: int, frames: int, seconds: float, args, synth: str | None, gil: bool = False) -> dict:
    """One run under both floods, counted by a bare client: ``play`` with ``synth`` (in a
    pseudo-terminal), or with ``synth`` None the stub listener (the baseline). The count runs from
    a second after the music began (after every JACK client has joined the graph, which the server
    may count as an xrun) until a second before it ends, as long for the baseline."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=server, PYTHONUNBUFFERED="1", COLUMNS="120", LINES="40",
               TERM="xterm-256color")
    osc_port = free_udp_port()
    flooding = seconds + 60  # the floods outlast the run (a slow start included); stopped after it
    midi = midi_flood(server, args.midi_rate, flooding, MIDI_DELAY_S) if args.midi_rate else None
    time.sleep(1.0)  # its port exists before the listener looks for it
    counter = JackRecorder("bench-xruns", record=False, server=server)
    term = None
    if synth is None:
        proc = stub_listener(server, osc_port, flooding, midi is not None)
        time.sleep(MIDI_DELAY_S)
    else:
        command = [sys.executable, str(ROOT / "run.py"), "play", "--synth", synth, "--midi-out", "virtual",
                   "--midi-api", "jack", "--osc-port", str(osc_port), "--no-myo", "--seconds", str(seconds),
                   "--tempo", str(args.tempo), "--seed", "1",
                   *(["--midi-in", MIDI_PORT, "--midi-in-api", "jack"] if midi else ["--midi-in", "none"]),
                   *(["--model", args.model] if args.model else []),
                   *(["--ensemble", args.ensemble] if args.ensemble else [])]
        term = Pty()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=term.slave, stdout=term.slave, stderr=term.slave,
                                close_fds=True)
        term.start()
        wait_until_playing(osc_port, alive=lambda: proc.poll() is None)
    flood = osc_flood(osc_port, args.osc_rate, flooding) if args.osc_rate else None
    time.sleep(1.0)
    spy = spy_out = None
    if gil:
        spy_out = Path(f"/tmp/bench-audio-gil-{os.getpid()}.txt")
        spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record",
                                "--pid", str(proc.pid), "--gil", "--threads", "--nonblocking", "--rate", "500",
                                "--duration", str(int(max(5, seconds - 10))), "--format", "raw", "-o", str(spy_out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    x0, w0, c0 = counter.xruns, time.monotonic(), cpu_seconds(proc.pid)
    threads0, server0 = sample(proc.pid), sample(jackd)
    end = w0 + seconds - 2.0
    while proc.poll() is None and time.monotonic() < end:
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    wall, xruns = time.monotonic() - w0, counter.xruns - x0
    threads1, server1 = sample(proc.pid), sample(jackd)
    cpu = cpu_seconds(proc.pid) if proc.poll() is None else c0
    if synth is None:
        proc.terminate()
    proc.wait(60)
    counter.close()
    for p in (flood, midi):
        if p is not None:
            p.terminate()
            p.wait(30)
    cycles_per_s = 48000 / frames
    play_threads, server_threads = usage(threads0, threads1, wall), usage(server0, server1, wall)
    result = {
        "synth": synth or "bare client (stub listener)", "seconds": round(wall, 1), "xruns": xruns,
        "xruns_per_10min": round(xruns * 600 / wall, 2), "cpu_percent": round(100 * (cpu - c0) / wall, 1),
        "threads": by_name(play_threads), "jack_server_threads": by_name(server_threads),
        "realtime_blocks_per_cycle": {f"{t.name} ({t.tid})": round(t.blocks_per_cycle(cycles_per_s), 3)
                                      for t in play_threads if t.policy.startswith(("FIFO", "RR"))},
        "returncode": proc.returncode,
    }
    if term is not None:
        text = term.text()
        closing = next((line for line in reversed(text.splitlines()) if "notes," in line and "bars" in line), "")
        found = lambda pattern: int(m.group(1)) if (m := re.search(pattern, closing)) else None  # noqa: E731
        result.update(engine_underruns=found(r"(\d+) underruns"), late_notes=found(r"(\d+) late notes") or 0,
                      composed_late=found(r"(\d+) composed late") or 0, composed_late_worst_ms=found(r"by up to (\d+) ms") or 0,
                      sound="FluidSynth" if "FluidSynth" in text else "numpy synth" if "numpy synth" in text else "?",
                      realtime=next((line.strip() for line in text.splitlines() if "real-time priority" in line), ""),
                      closing_line=closing.strip()[:300])
    if spy is not None:
        spy.wait(60)
        result["gil_share"] = gil_shares(spy_out)
    return result


def gil_shares(path: Path) -> dict[str, float]:
    """Share of py-spy's GIL samples per thread (its raw format: 'thread (tid): name;frames... count')."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, n = line.rpartition(" ")
        head = stack.split(";", 1)[0]
        name = head.split(":", 1)[1].strip() if ":" in head else "unnamed (a C library's thread)"
        counts[name] = counts.get(name, 0) + int(n)
    total = sum(counts.values()) or 1
    return {name: round(100 * n / total, 1) for name, n in sorted(counts.items(), key=lambda kv: -kv[1])}


def show(frames: int, r: dict, base: dict) -> None:
    top = ", ".join(f"{name} {cpu}" for name, cpu in list(r["threads"].items())[:9] if cpu >= 0.1)
    jack = ", ".join(f"{name} {cpu}" for name, cpu in list(r["jack_server_threads"].items())[:3])
    if "sound" not in r:
        print(f"{frames:4d} frames bare client under the same floods: {r['xruns']} xruns in {r['seconds']:.0f} s "
              f"| stub cpu {r['cpu_percent']}% | jackd {jack}", flush=True)
        return
    print(f"{frames:4d} frames {r['synth']:10s} ({r['sound']}): xruns {r['xruns']} vs bare {base['xruns']} "
          f"(excess {r['excess_xruns']:+d}, {r['xruns_per_10min']}/10 min) | engine underruns {r['engine_underruns']} "
          f"| late notes {r['late_notes']} (composed late {r['composed_late']}, by up to {r['composed_late_worst_ms']} ms) "
          f"| cpu {r['cpu_percent']}%", flush=True)
    print(f"     threads (% of a core): {top} | jackd {jack}", flush=True)
    print(f"     real-time threads' blocks per JACK cycle (1 = only the wait for the next cycle): "
          f"{r['realtime_blocks_per_cycle']}", flush=True)
    if r.get("realtime"):
        print(f"     {r['realtime']}", flush=True)
    if "gil_share" in r:
        print(f"     GIL share {r['gil_share']}", flush=True)
    if r["returncode"]:
        print(f"     play exited {r['returncode']}: {r['closing_line']}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of each play run (and of each baseline)")
    ap.add_argument("--frames", default="256,64", help="JACK periods to test (default 256,64)")
    ap.add_argument("--synths", default="fluidsynth,numpy")
    ap.add_argument("--tempo", type=float, default=200.0)
    ap.add_argument("--osc-rate", type=float, default=2000.0, help="OSC messages per second (0: none)")
    ap.add_argument("--midi-rate", type=float, default=1000.0, help="MIDI CCs per second into play's input (0: none)")
    ap.add_argument("--model", help="checkpoint (default: the shipped model)")
    ap.add_argument("--ensemble", metavar="duo|trio|pipes|FILE.yaml", help="play an ensemble (default: the lead alone)")
    ap.add_argument("--gil", action="store_true", help="sample which thread holds the GIL in the numpy run (py-spy)")
    ap.add_argument("--no-realtime", action="store_true", help="run the JACK server without real-time priority")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    seconds = args.minutes * 60
    report: dict = {"load_before": load(), "cores": os.cpu_count(), "osc_rate": args.osc_rate,
                    "midi_rate": args.midi_rate, "runs": []}
    for frames in [int(f) for f in args.frames.split(",")]:
        server = f"folk-bench-audio-{frames}-{os.getpid()}"
        # as a performer's server runs: real-time (-R) where allowed, so that its clients' threads are
        # real-time too and the count shows what our design loses, not the machine's load
        try:
            jackd = start_jack(server, frames, realtime=not args.no_realtime)
        except AssertionError as error:
            raise SystemExit(f"could not start a JACK dummy server at {frames} frames: {error}") from None
        realtime = any(t.policy == "FIFO" for t in sample(jackd.pid).values())
        report.setdefault("jack_realtime", realtime)
        if not args.json:
            print(f"{'ensemble ' + args.ensemble + '; ' if args.ensemble else ''}load average {report['load_before']} on {os.cpu_count()} cores; {args.minutes:g} min per run; "
                  f"{args.osc_rate:g} OSC + {args.midi_rate:g} MIDI CC a second; JACK server at {frames} frames "
                  f"{'real-time' if realtime else 'WITHOUT real-time priority (not allowed here, or --no-realtime): its cycles are late whenever the machine is busy'}",
                  flush=True)
        try:
            base = storm(server, jackd.pid, frames, seconds, args, None)
            base.update(frames=frames)
            report["runs"].append(base)
            if not args.json:
                show(frames, base, base)
            for synth in args.synths.split(","):
                r = storm(server, jackd.pid, frames, seconds, args, synth, gil=args.gil and synth == "numpy")
                r.update(frames=frames, baseline_xruns=base["xruns"], excess_xruns=r["xruns"] - base["xruns"])
                report["runs"].append(r)
                if not args.json:
                    show(frames, r, base)
        finally:
            stop_jack(jackd)
    report["load_after"] = load()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"load average after: {report['load_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
