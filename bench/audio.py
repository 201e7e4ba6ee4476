"""What a listener hears from ``play``'s built-in sound: dropouts counted from outside, per engine.

For each JACK period asked for (default 256 and 64 frames at 48 kHz), a JACK dummy server of its
own is started; then, in the same run:

- baseline: a bare JACK client (the JACK-Client package, which does nothing) counts the server's
  xruns for as long as each ``play`` run lasts;
- for each engine (FluidSynth, the numpy synth): ``play`` runs in a pseudo-terminal, so its live
  view is drawn as a performer sees it, with MIDI out to a JACK port, under a flood of 2,000 OSC
  messages a second and a flood of MIDI CCs into its MIDI input; an independent JACK client
  counts xruns meanwhile (its xrun callback). Reported: those xruns against the baseline's, the
  engine's own underruns and late notes (from ``play``'s closing line), notes composed late, and
  the process's CPU (user + system time over wall time; 100% = one core).

With ``--gil`` (needs ``py-spy``), the numpy run is also sampled from outside (without pausing
it: a paused process misses JACK cycles) and the share of samples in which each thread held the
GIL is printed: which threads keep the audio waiting.

    python bench/audio.py [--minutes 10] [--frames 256,64] [--synths fluidsynth,numpy] [--tempo 200]
                          [--osc-rate 2000] [--midi-rate 1000] [--ensemble trio] [--gil] [--json]

``--ensemble trio`` (or any ensemble) plays the band: FluidSynth sounds each voice with its own
instrument on its own channel (the trio: fiddle, flute and the guitar's chords, up to four notes
a stroke beside the two melodies), each voice on its own channel of the MIDI port too.

Targets (docs/audio.md): at 256 frames over 10 minutes with the view and the OSC flood, FluidSynth no
more xruns than the bare client; the numpy synth at most 1 more per 10 minutes.
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

from bench.harness.net import free_udp_port  # noqa: E402
from bench.realtime import FLOOD  # noqa: E402
from bench.harness.audio import JackRecorder  # noqa: E402
from bench.harness.jack_server import start_jack, stop_jack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MIDI_FLOOD = r"""
import sys, time, rtmidi
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="midi-flood")
out.open_virtual_port("out")
time.sleep(float(sys.argv[3]))  # until play has connected its input to us
t0 = time.perf_counter(); n = 0
while time.perf_counter() - t0 < seconds:
    due = t0 + n / rate
    now = time.perf_counter()
    if due > now: time.sleep(due - now)
    out.send_message([0xB0, 1 + n % 8, (n * 7) % 128]); n += 1
print(n)
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(server: str, seconds: float) -> int:
    bare = JackRecorder("bench-bare", record=False, server=server)
    time.sleep(seconds)
    bare.close()
    return bare.xruns


def play(server: str, synth: str, seconds: float, args, gil: bool) -> dict:
    """One ``play`` run in a pseudo-terminal, with both floods, counted from outside."""
    import pty

    env = dict(os.environ, JACK_DEFAULT_SERVER=server, PYTHONUNBUFFERED="1", COLUMNS="120", LINES="40", TERM="xterm-256color")
    osc_port = free_udp_port()
    midi = subprocess.Popen([sys.executable, "-c", MIDI_FLOOD, str(args.midi_rate), str(seconds), "4"], env=env,
                            stdout=subprocess.PIPE, text=True) if args.midi_rate else None
    time.sleep(1.0)  # its port exists before play looks for it
    command = [sys.executable, str(ROOT / "run.py"), "play", "--synth", synth, "--midi-out", "virtual", "--midi-api", "jack",
               "--osc-port", str(osc_port), "--no-myo", "--seconds", str(seconds), "--tempo", str(args.tempo),
               "--seed", "1", *(["--midi-in", "midi-flood", "--midi-in-api", "jack"] if midi else ["--midi-in", "none"])]
    if args.model:
        command += ["--model", args.model]
    if args.ensemble:
        command += ["--ensemble", args.ensemble]
    master, slave = pty.openpty()
    counter = JackRecorder("bench-xruns", record=False, server=server)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    screen = bytearray()

    def drain() -> None:  # the terminal must be read, or the view would block on a full pty
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    time.sleep(3.0)  # the model loaded and the sound opened
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(osc_port), str(args.osc_rate), str(seconds)],
                             stdout=subprocess.PIPE, text=True) if args.osc_rate else None
    spy = None
    if gil:
        spy_out = Path(f"/tmp/bench-audio-gil-{os.getpid()}.txt")
        spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(proc.pid), "--gil", "--threads", "--nonblocking",
                                "--rate", "500", "--duration", str(int(max(5, seconds - 10))), "--format", "raw",
                                "-o", str(spy_out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    x0, c0, w0 = counter.xruns, cpu_seconds(proc.pid), time.monotonic()
    cpu = c0
    while proc.poll() is None:
        try:
            cpu = cpu_seconds(proc.pid)
        except OSError:
            break
        time.sleep(0.5)
    wall, xruns = time.monotonic() - w0, counter.xruns - x0
    proc.wait()
    counter.close()
    reader.join(2.0)
    os.close(master)
    for p in (flood, midi):
        if p is not None:
            p.wait(30)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.decode(errors="replace"))
    closing = next((line for line in reversed(text.splitlines()) if "notes," in line and "bars" in line), "")
    found = lambda pattern: int(m.group(1)) if (m := re.search(pattern, closing)) else None  # noqa: E731
    result = {
        "synth": synth, "seconds": round(wall, 1), "xruns": xruns, "xruns_per_10min": round(xruns * 600 / wall, 2),
        "engine_underruns": found(r"(\d+) underruns"), "late_notes": found(r"(\d+) late notes"),
        "composed_late": found(r"(\d+) composed late") or 0, "cpu_percent": round(100 * (cpu - c0) / wall, 1),
        "sound": "FluidSynth" if "FluidSynth" in text else "numpy synth" if "numpy synth" in text else "?",
        "closing_line": closing.strip()[:300], "returncode": proc.returncode,
    }
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
    load = os.getloadavg()[0]
    print(f"{'ensemble ' + args.ensemble + '; ' if args.ensemble else ''}load average {load:.2f} on {os.cpu_count()} cores; {args.minutes:g} min per run; JACK server "
          f"{'without' if args.no_realtime else 'with'} real-time priority (where allowed)", flush=True)
    report = {"load": load, "runs": []}
    for frames in [int(f) for f in args.frames.split(",")]:
        server = f"folk-bench-audio-{frames}-{os.getpid()}"
        # as a performer's server runs: real-time (-R) where allowed, so that its clients' threads are
        # real-time too and the count shows what our design loses, not the machine's load
        try:
            jackd = start_jack(server, frames, realtime=not args.no_realtime)
        except AssertionError as error:
            raise SystemExit(f"could not start a JACK dummy server at {frames} frames: {error}") from None
        try:
            base = baseline(server, seconds)
            print(f"{frames:4d} frames: bare client {base} xruns in {seconds:.0f} s", flush=True)
            for synth in args.synths.split(","):
                r = play(server, synth, seconds, args, gil=args.gil and synth == "numpy")
                r.update(frames=frames, baseline_xruns=base, excess_xruns=r["xruns"] - base)
                report["runs"].append(r)
                if not args.json:
                    print(f"{frames:4d} frames {synth:10s} ({r['sound']}): xruns {r['xruns']} vs bare {base} "
                          f"(excess {r['excess_xruns']:+d}, {r['xruns_per_10min']}/10 min) | engine underruns "
                          f"{r['engine_underruns']} | late notes {r['late_notes']} (composed late {r['composed_late']}) "
                          f"| cpu {r['cpu_percent']}%" + (f" | GIL share {r['gil_share']}" if "gil_share" in r else ""),
                          flush=True)
                    if r["returncode"]:
                        print(f"     play exited {r['returncode']}: {r['closing_line']}", flush=True)
        finally:
            stop_jack(jackd)
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
