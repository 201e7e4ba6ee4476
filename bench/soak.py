"""A long take with every control swept, listened to from outside: what a performer's rig hears.

``run.py play`` runs as a performer starts it (shipped model unless ``--model``, MIDI to a JACK
port, a recording), a JACK listener in this process keeps every message it receives, and every
``--every`` seconds one live parameter is moved over OSC, in turn, to a point of its whole range
(numbers visit 0, 100, 50, 25 and 75 % of min..max, so temperature reaches 4; choices and sets
cycle; lists get random members; tune.new and panic fire), followed by a ``/state`` request. At
the end it reports:

- RSS: MB at start and end, and its growth in MB per hour: a least-squares line over the whole run
  after the first model switch (loading the second model adds its weights once; the line fits every
  sample from there to the end, not a window); threads at start and end;
- notes: composed (play's own count), received by the listener, recorded in the .mid, shed by
  the port's budget, and how many recorded notes the listener did not hear (or vice versa);
- held: notes the listener heard sounding over 5 s, and over their recorded length by > 50 ms;
- the largest number of notes sounding at once at the listener;
- onsets: listener minus recording, after the median offset: p50/p99/max, and its drift (ms per
  hour, a least-squares line) with the first and last tenth of the take compared (ratio);
- engine lag: notes composed after their time and timeline resyncs (counts, worst ms, from
  play's log), and /state round trips p50/p99/max.

Needs a running JACK server (``JACK_DEFAULT_SERVER``). Example (the lead's soak: 25 minutes):

    JACK_DEFAULT_SERVER=NAME python bench/soak.py --minutes 25 [--model PATH] [--seed 1] [--json]

``--tracemalloc S`` runs ``play`` under ``bench/memory_trace.py``, which writes every S seconds the
Python allocations that grew most (``tracemalloc.txt`` in the take's folder): where memory goes when
the slope is not flat. Tracing slows every allocation, so its timing figures are not the product's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pythonosc.osc_message import OscMessage  # noqa: E402

from instrument.live.params import INSTRUMENT_PARAMS, ParamSpec  # noqa: E402
from instrument.live.steering import installed_sets  # noqa: E402
from instrument.model import checkpoint, vocab  # noqa: E402
from bench.harness.midi import notes_in  # noqa: E402
from bench.harness.jack_server import realtime_jack_server  # noqa: E402
from bench.harness.midi import heard_notes, match_notes, Receiver  # noqa: E402
from bench.harness.net import free_udp_port  # noqa: E402
from bench.harness.osc import osc_message as osc  # noqa: E402

PHASES = (0.0, 1.0, 0.5, 0.25, 0.75)
HELD_S = 5.0


class Sweep:
    """The controls, one move per call: every parameter in turn, over its whole range."""

    def __init__(self, specs: tuple[ParamSpec, ...], sets: tuple[str, ...], seed: int):
        # program: read at start only; voice.1.mute would silence the take whose notes the soak counts
        self.specs = [s for s in specs if s.name not in ("program", "voice.1.mute")]
        self.sets = ("random", *sets)
        self.rng = random.Random(seed)
        self.turn = 0

    def next(self) -> tuple[str, list]:
        spec = self.specs[self.turn % len(self.specs)]
        visit = self.turn // len(self.specs)
        self.turn += 1
        phase = PHASES[visit % len(PHASES)]
        address = "/" + spec.name.replace(".", "/")
        rng = self.rng
        if spec.kind in ("float", "int"):
            value = spec.minimum + (spec.maximum - spec.minimum) * phase
            return address, [int(round(value)) if spec.kind == "int" else float(value)]
        if spec.kind == "bool":
            return address, [int(visit % 2 == 0)]
        if spec.kind == "choice":
            return address, [spec.choices[visit % len(spec.choices)]]
        if spec.kind == "trigger":
            return address, []
        if spec.name == "ablation.set":
            return address, [self.sets[visit % len(self.sets)]]
        if spec.name == "stimulation.token":
            return address, [rng.choice([t for t, c in zip(vocab.TOKENS, vocab.TOKEN_CLASS) if c is vocab.TokenClass.PITCH])]
        if spec.name == "ablation.units":
            return address, sorted(rng.sample(range(512), int(64 * phase))) or [0]
        if spec.name == "bias.pitch_classes":
            return address, sorted(rng.sample(range(12), 1 + int(6 * phase)))
        if spec.name == "stimulation.keys":
            return address, sorted(rng.sample(range(36, 96), int(4 * phase))) or [60]
        return address, []


def rss_mb(pid: int) -> tuple[float, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return rss, threads


def slope_per_hour(times: list[float], values: list[float]) -> float:
    if len(times) < 3 or times[-1] - times[0] < 1:
        return float("nan")
    return float(np.polyfit(np.asarray(times), np.asarray(values), 1)[0] * 3600)


def pct(values, scale: float = 1000.0) -> dict[str, float]:
    if len(values) == 0:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    a = np.asarray(values) * scale
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3), "n": int(len(a))}


def state_reply(reply: bytes) -> dict | None:
    """A /state reply's JSON, or None for any other message."""
    try:
        message = OscMessage(reply)
        return json.loads(message.params[0]) if message.address == "/state" else None
    except (ValueError, IndexError, TypeError):
        return None


def playing_model(state: dict) -> str | None:
    """The model playing, from a /state reply's status."""
    return (state.get("status") or {}).get("model", {}).get("playing")


def rss_fit(samples: list[tuple[float, float, int]], switched: float | None) -> tuple[float, float]:
    """(from which second, MB per hour): the least-squares line over every sample after the first
    model switch (after the first minute when no switch came), to the end of the run."""
    since = switched if switched is not None else 60.0
    after = [s for s in samples if s[0] >= since]
    if len(after) < 3:
        after = samples
    return since, slope_per_hour([s[0] for s in after], [s[1] for s in after])


def soak(minutes: float, model: str | None, seed: int, every: float, trace_every: float = 0.0) -> dict:
    where = model or str(checkpoint.resolve(None))
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    take = folder / "soak.mid"
    port = free_udp_port()
    seconds = minutes * 60
    receiver = Receiver("soak-listener", "in")
    launcher = [sys.executable]
    if trace_every:
        launcher += [str(ROOT / "bench" / "memory_trace.py"), "--every", str(trace_every), "--warmup", str(trace_every),
                     "--out", str(folder / "tracemalloc.txt"), "--"]
    args = launcher + [str(ROOT / "run.py"), "play", "--quiet", "--no-myo", "--midi-in", "none", "--no-audio",
                       "--midi-out", "soak-listener", "--midi-api", "jack", "--record", str(take), "--osc-port", str(port),
                       "--seconds", str(seconds), "--seed", str(seed)] + (["--model", model] if model else [])
    log = (folder / "play.log").open("w")
    proc = subprocess.Popen(args, cwd=folder, stdout=subprocess.DEVNULL, stderr=log, text=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    sweep = Sweep(INSTRUMENT_PARAMS, installed_sets(where), seed)
    samples, rtts, moves = [], [], 0
    started = None
    first_model, switched = None, None  # the model playing at the start; when another first played
    try:
        while proc.poll() is None:  # until /state has the performance's status (the controllers answer first)
            sock.sendto(osc("/state"), ("127.0.0.1", port))
            try:
                state = state_reply(sock.recv(65536))
            except (socket.timeout, ConnectionRefusedError):
                continue
            if state is not None and "status" in state:
                first_model = playing_model(state)
                started = time.monotonic()
                break
            time.sleep(0.05)
        next_move = time.monotonic()
        while proc.poll() is None:
            now = time.monotonic()
            try:
                samples.append((now - started, *rss_mb(proc.pid)))
            except (OSError, AttributeError):
                break
            if now >= next_move:
                address, values = sweep.next()
                sock.sendto(osc(address, *values), ("127.0.0.1", port))
                moves += 1
                asked = time.monotonic()
                sock.sendto(osc("/state"), ("127.0.0.1", port))
                try:
                    while (state := state_reply(sock.recv(65536))) is None:
                        pass
                    rtts.append(time.monotonic() - asked)
                    playing = playing_model(state)
                    if switched is None and first_model is not None and playing not in (None, first_model):
                        switched = time.monotonic() - started
                except socket.timeout:
                    rtts.append(1.0)
                next_move += every
            time.sleep(min(1.0, max(0.01, next_move - time.monotonic())))
        proc.wait(timeout=seconds + 120)
        time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        receiver.close()
        sock.close()
        log.close()
    err = (folder / "play.log").read_text()
    heard, most, hanging = heard_notes(receiver.messages)
    recorded = sorted((on, off, pitch, channel - 1) for on, off, pitch, _, channel in notes_in(take)[0])
    pairs = match_notes(heard, recorded)
    offsets = np.asarray([h[0] - r[0] for h, r in pairs])
    when = np.asarray([r[0] for _, r in pairs])
    center = float(np.median(offsets)) if len(offsets) else 0.0
    errors = np.abs(offsets - center)
    tenth = max(1, len(errors) // 10)
    early, late = errors[:tenth], errors[-tenth:]
    summary = re.findall(r"^(.*): (\d+) notes, (\d+) bars", err, re.M)
    late_ms = [float(x) for x in re.findall(r"a note was composed ([\d.]+) ms after its time", err)]
    behind_ms = [float(x) for x in re.findall(r"fell ([\d.]+) ms behind", err)]
    shed = sum(int(x) for x in re.findall(r"(\d+) note-ons shed", err))
    samples = [s for s in samples if s[0] <= seconds - 1] or samples  # not the shutdown
    since, per_hour = rss_fit(samples, switched)
    at_switch = next((s[1] for s in samples if s[0] >= since), None)
    played_s = samples[-1][0] if samples else 0.0
    return {
        "minutes": minutes, "moves": moves, "exit": proc.returncode, "stop": summary[-1][0] if summary else "?",
        "played_s": round(played_s, 1),
        "rss_mb": {"start": round(samples[0][1], 1) if samples else None, "end": round(samples[-1][1], 1) if samples else None,
                   "at_fit_start": round(at_switch, 1) if at_switch is not None else None,
                   "fit_from_s": None if switched is None else round(switched, 1),
                   "per_hour": round(per_hour, 2) if not math.isnan(per_hour) else None},
        "threads": {"start": samples[0][2] if samples else None, "end": samples[-1][2] if samples else None},
        "notes": {"composed": int(summary[-1][1]) if summary else None, "received": len(heard), "recorded": len(recorded),
                  "shed": shed, "recorded_not_heard": len(recorded) - len(pairs), "heard_not_recorded": len(heard) - len(pairs)},
        "held": {f"over_{HELD_S:g}s": sum(1 for n in heard if n[1] - n[0] > HELD_S),
                 "over_recorded_by_50ms": sum(1 for h, r in pairs if (h[1] - h[0]) - (r[1] - r[0]) > 0.05),
                 "still_sounding_at_end": len(hanging)},
        "most_sounding_at_once": most,
        "onset_ms": {**pct(errors), "drift_ms_per_hour": round(slope_per_hour(list(when), list(offsets * 1000)), 3),
                     "p99_first_tenth": pct(early)["p99"], "p99_last_tenth": pct(late)["p99"],
                     "ratio_last_to_first": round(float(np.percentile(late, 99) / max(np.percentile(early, 99), 1e-6)), 2)
                     if len(errors) else None},
        "engine": {"late_notes": len(late_ms), "late_worst_ms": max(late_ms, default=0.0), "resyncs": len(behind_ms),
                   "behind_worst_ms": max(behind_ms, default=0.0), "errors": err.count(" ERROR "),
                   "tracebacks": err.count("Traceback")},
        "state_rtt_ms": pct(rtts),
        "files": str(folder),
        "tracemalloc": str(folder / "tracemalloc.txt") if trace_every else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="length of the take (default 25)")
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between control moves (default 2)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--tracemalloc", type=float, default=0.0, metavar="S",
                        help="trace Python allocations in play and write the top growth every S seconds")
    args = parser.parse_args()
    if not os.environ.get("JACK_DEFAULT_SERVER"):
        print("soak: set JACK_DEFAULT_SERVER to a running JACK server", file=sys.stderr)
        return 2
    with realtime_jack_server():
        result = soak(args.minutes, args.model, args.seed, args.every, args.tracemalloc)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    n, h, o, e = result["notes"], result["held"], result["onset_ms"], result["engine"]
    r = result["rss_mb"]
    print(f"soak: {result['minutes']:g} min asked, {result['played_s']:.0f} s played, {result['moves']} control moves, "
          f"play exit {result['exit']} ({result['stop']})")
    fit = f"after the first model switch at {r['fit_from_s']} s" if r["fit_from_s"] is not None else "after the first minute (no model switch seen)"
    print(f"RSS: {r['start']} -> {r['end']} MB ({r['at_fit_start']} MB at the fit's start); fitted slope {r['per_hour']} MB/h "
          f"{fit}, to the end; threads {result['threads']['start']} -> {result['threads']['end']}")
    print(f"notes: composed {n['composed']}, received {n['received']}, recorded {n['recorded']}, shed {n['shed']}; "
          f"recorded not heard {n['recorded_not_heard']}, heard not recorded {n['heard_not_recorded']}")
    print(f"held over {HELD_S:g} s: {h[f'over_{HELD_S:g}s']}; over recorded length: {h['over_recorded_by_50ms']}; "
          f"sounding at the end: {h['still_sounding_at_end']}; most at once: {result['most_sounding_at_once']}")
    print(f"onset (listener - recording): p50 {o['p50']} ms, p99 {o['p99']} ms, max {o['max']} ms; drift "
          f"{o['drift_ms_per_hour']} ms/h; p99 first tenth {o['p99_first_tenth']} ms, last {o['p99_last_tenth']} ms "
          f"(ratio {o['ratio_last_to_first']})")
    print(f"engine: {e['late_notes']} late notes (worst {e['late_worst_ms']} ms), {e['resyncs']} resyncs (worst "
          f"{e['behind_worst_ms']} ms), {e['errors']} errors, {e['tracebacks']} tracebacks; /state p50 "
          f"{result['state_rtt_ms']['p50']} ms, p99 {result['state_rtt_ms']['p99']} ms")
    print(f"files: {result['files']}")
    if result["tracemalloc"]:
        print(f"tracemalloc: {result['tracemalloc']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
