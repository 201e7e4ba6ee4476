"""How much of a block's time the synth's callback takes, with 1, 8 and 16 voices sounding.

Offline: ``ToneBank.block`` (the very function the audio callback runs) timed block by block.
With ``--live``: the real callback on the default output device (a JACK server, for instance),
timed inside the callback. Prints median and 99th percentile, wall and thread CPU time.

    python bench/synth_cpu.py [--live] [--blocksize 256] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from instrument.music.phrasing import ScheduledNote  # noqa: E402
from instrument.outputs.tones import TIMBRES, ToneBank  # noqa: E402
from instrument.timing import clock  # noqa: E402

SR = 48000
PITCHES = [45, 48, 52, 55, 57, 60, 62, 64, 67, 69, 72, 74, 76, 79, 81, 84]


def line(label: str, wall: np.ndarray, cpu: np.ndarray, block_s: float) -> str:
    w, c = np.percentile(wall, [50, 99]) * 1e3, np.percentile(cpu, [50, 99]) * 1e3
    return (f"{label}: wall median {w[0]:.3f} ms, p99 {w[1]:.3f} ms | cpu median {c[0]:.3f} ms, p99 {c[1]:.3f} ms"
            f" | block {block_s * 1e3:.2f} ms, median {100 * c[0] / (block_s * 1e3):.1f}% of it")


def offline(timbre: str, voices: int, blocksize: int, seconds: float) -> str:
    bank = ToneBank(SR, timbre)
    wall, cpu = [], []
    for b in range(int(seconds * SR / blocksize)):
        if b % int(0.5 * SR / blocksize) == 0:  # retrigger every 0.5 s: always `voices` held
            for p in PITCHES[:voices]:
                bank.add(bank.position, bank.position + int(0.5 * SR), p, 100)
        c, w = time.thread_time(), time.perf_counter()
        bank.block(blocksize)
        wall.append(time.perf_counter() - w)
        cpu.append(time.thread_time() - c)
    return line(f"offline {timbre:5s} {voices:2d} voices", np.array(wall), np.array(cpu), blocksize / SR)


def live(timbre: str, voices: int, blocksize: int, seconds: float) -> str:
    from instrument.outputs.synth import Synth

    synth = Synth(timbre=timbre, blocksize=blocksize)
    synth.start(clock())
    t0 = clock() + 0.2
    t = t0
    while t < t0 + seconds:
        for p in PITCHES[:voices]:
            synth.schedule(ScheduledNote(t, t + 0.5, p, 100, 1, 1))
        t += 0.5
    time.sleep(0.2)
    synth.callback_times.clear()
    time.sleep(seconds)
    times = np.array(synth.callback_times)
    status = synth.status()
    synth.close(clock())
    return line(f"live    {timbre:5s} {voices:2d} voices", times[:, 0], times[:, 1], blocksize / SR) + f" | {status}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live", action="store_true", help="also time the real callback on the default output device")
    ap.add_argument("--blocksize", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for timbre in TIMBRES:
        for voices in (1, 8, 16):
            print(offline(timbre, voices, args.blocksize, args.seconds), flush=True)
            if args.live:
                print(live(timbre, voices, args.blocksize, args.seconds), flush=True)


if __name__ == "__main__":
    main()
