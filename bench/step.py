#!/usr/bin/env python3
"""Step benchmark: how fast one step of the network is, three ways, in one run.

    python bench/step.py [--json] [--quick] [--model PATH] [--tunes 1000]

* ``naive_lstmcell``: a stack of three torch ``nn.LSTMCell`` and an ``nn.Linear`` fed a one-hot
  vector, plus a softmax (torch's threads: as many as the column says);
* ``numpy_reference``: docs/design.md §1's equations in numpy float32, per gate
  (``x @ W_x + h @ W_h + b``), batched over voices, plus a softmax (OpenBLAS threads likewise);
* ``ours``: the whole ``Stepper.step()`` on the fast path: feeding the pending token, three
  layers, logits, temperature / bias / guard, and sampling every voice's next token.

Per batch of 1, 2, 4, 8 and 16 voices (an ensemble's network voices step together in one
batched call: a duo or trio is 2, eight followers 8): p50 and p99 of the time per step, with
the implementations interleaved in rounds so that a change in the machine's load hits all three
alike; ``ours_per_voice`` is the same step with a Controls per voice, each with its own logit bias
(as an ensemble steps: the lead's controls and each follower's bias), and its ratio to one voice. Then tokens/s
of ``generate_tunes`` making ``--tunes`` tunes offline (batches of 64; a quarter of them for the
one-thread figure), and the onset error of a
simulated live loop (a timing thread, a model thread and a synth thread) with the step on one
core and on two. Every section also reports the CPU the *other* processes used meanwhile (in
cores, from /proc/stat minus this process): on a shared machine a figure means little without it.
With ``--json`` the result is one JSON object (see ``result`` below) and nothing else on stdout.
The model is the shipped one (what the instrument plays; its fp16-stored weights let "ours" stream
fp16 at small batches, exactly: see ``Stepper``'s ``precision``) unless ``--model`` names another
checkpoint or ``random`` (random float32 weights, 3 x 512: float32 throughout).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from instrument.model import fast_step, vocab  # noqa: E402
from instrument.model.folkrnn_import import params_from_model  # noqa: E402
from instrument.model.generate import generate_tunes  # noqa: E402
from instrument.model.network import FolkRNN  # noqa: E402
from instrument.model.reference import NumpyFolkRNN  # noqa: E402
from instrument.model.controls import Controls  # noqa: E402
from instrument.model.stepper import Stepper  # noqa: E402

BATCHES = (1, 2, 4, 8, 16)
PROMPT = ["<s>", "M:4/4", "K:Cmaj"]
V = vocab.SIZE


# -- the machine ---------------------------------------------------------------------------------
def _busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """CPU used by other processes while the block runs, in cores (0 = a quiet machine)."""

    def __enter__(self) -> "OtherLoad":
        self.t, self.busy, self.own = time.perf_counter(), _busy_seconds(), sum(os.times()[:2])
        return self

    def __exit__(self, *exc) -> None:
        elapsed = time.perf_counter() - self.t
        other = (_busy_seconds() - self.busy) - (sum(os.times()[:2]) - self.own)
        self.cores = round(max(0.0, other / elapsed), 2) if elapsed > 0 else 0.0


def set_blas_threads(n: int) -> bool:
    """numpy's OpenBLAS thread count, through the library numpy loaded (no extra dependency)."""
    np.ones((2, 2)) @ np.ones((2, 2))
    try:
        paths = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower()}
    except OSError:
        return False
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name)(ctypes.c_int(n))
                return True
    return False


# -- the three implementations -------------------------------------------------------------------
class NaiveLSTMCell:
    """Three nn.LSTMCell and an nn.Linear with the model's weights, one-hot input, softmax."""

    def __init__(self, model: FolkRNN, voices: int):
        self.cells = []
        for layer in model.layers:
            cell = nn.LSTMCell(layer.w_ih.shape[1], layer.hidden)
            with torch.no_grad():
                cell.weight_ih.copy_(layer.w_ih)
                cell.weight_hh.copy_(layer.w_hh)
                cell.bias_ih.copy_(layer.bias)
                cell.bias_hh.zero_()
            self.cells.append(cell)
        self.out = nn.Linear(model.config.hidden, V)
        self.out.load_state_dict(model.out.state_dict())
        self.state = [(l.h0.detach().expand(voices, -1).clone(), l.c0.detach().expand(voices, -1).clone()) for l in model.layers]
        self.rows = torch.arange(voices)
        self.voices = voices

    @torch.no_grad()
    def step(self, tokens: np.ndarray) -> torch.Tensor:
        x = torch.zeros(self.voices, V)
        x[self.rows, torch.from_numpy(tokens)] = 1.0
        for i, cell in enumerate(self.cells):
            self.state[i] = cell(x, self.state[i])
            x = self.state[i][0]
        return torch.softmax(self.out(x), dim=-1)


class NumpyBatched:
    """instrument/model/reference.py's equations (one product per gate and input), batched over voices."""

    def __init__(self, model: FolkRNN, voices: int):
        self.ref = NumpyFolkRNN(params_from_model(model), vocab.INDEX, dtype=np.float32)
        self.ref.h = [np.tile(h, (voices, 1)) for h in self.ref.h]
        self.ref.c = [np.tile(c, (voices, 1)) for c in self.ref.c]
        self.eye = np.eye(V, dtype=np.float32)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        return self.ref.step_vector(self.eye[tokens])


def ours(model: FolkRNN, voices: int, threads: int, precision: str = "auto") -> Stepper:
    s = Stepper(model, voices=voices, seed=1, threads=threads, precision=precision)
    s.force(PROMPT)
    return s


# -- step timings ----------------------------------------------------------------------------------
def time_interleaved(runners: dict, steps: int, rounds: int = 5, warmup: int = 30, rewarm: int = 5) -> dict:
    """Per-step times of each runner (a no-argument callable), in `rounds` alternating blocks.
    Each block starts with `rewarm` untimed steps: the three implementations' weights (21 MB
    each) evict one another from the 32 MB L3, which a live instrument running one of them
    does not see."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[int]] = {name: [] for name in runners}
    per_round = max(1, steps // rounds)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, run in runners.items():
            block = times[name]
            for _ in range(rewarm):
                run()
            for _ in range(per_round):
                t0 = clock()
                run()
                block.append(clock() - t0)
    out = {}
    for name, block in times.items():
        ms = np.array(block) / 1e6
        out[name] = {"p50_ms": round(float(np.median(ms)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4)}
    return out


def step_table(model: FolkRNN, threads: int, steps: int) -> dict:
    torch.set_num_threads(threads)
    set_blas_threads(threads)
    rng = np.random.default_rng(0)
    table = {}
    for voices in BATCHES:
        tokens = rng.integers(0, V, size=(4096, voices))
        naive, npy, fast = NaiveLSTMCell(model, voices), NumpyBatched(model, voices), ours(model, voices, threads)
        counter = {"naive": 0, "numpy": 0}

        def feed(name, impl):
            def run():
                impl.step(tokens[counter[name] % len(tokens)])
                counter[name] += 1
            return run

        runners = {"naive_lstmcell": feed("naive", naive), "numpy_reference": feed("numpy", npy), "ours": fast.step}
        if voices > 1:  # as an ensemble steps: the lead's controls, each follower's own bias
            own = ours(model, voices, threads)
            biases = [Controls()] + [Controls(logit_bias=rng.normal(0, 1, V)) for _ in range(voices - 1)]
            runners["ours_per_voice"] = lambda own=own, biases=biases: own.step(biases)
        with OtherLoad() as load:
            table[f"batch{voices}"] = time_interleaved(runners, steps if voices < 16 else max(200, steps // 2))
        table[f"batch{voices}"]["ours_weights"] = fast.precision  # "auto": fp16 where exact and faster
        table[f"batch{voices}"]["other_load_cores"] = load.cores
    for voices in BATCHES:
        cell = table[f"batch{voices}"]
        cell["ours_vs_one_voice"] = round(cell["ours"]["p50_ms"] / table["batch1"]["ours"]["p50_ms"], 2)
        if "ours_per_voice" in cell:
            cell["per_voice_vs_one_voice"] = round(cell["ours_per_voice"]["p50_ms"] / table["batch1"]["ours"]["p50_ms"], 2)
    return table


def offline(model: FolkRNN, threads: int, tunes: int) -> dict:
    with OtherLoad() as load:
        t0 = time.perf_counter()
        out = generate_tunes(model, tunes, seed=1, batch=64, threads=threads)
        elapsed = time.perf_counter() - t0
    tokens = sum(2 + len(t.body) + t.ended for t in out)  # the sampled meter and mode, the body, </s>
    return {"tokens_per_s": round(tokens / elapsed, 1), "tokens": tokens, "seconds": round(elapsed, 2),
            "ended": sum(t.ended for t in out), "other_load_cores": load.cores}


# -- the live loop ---------------------------------------------------------------------------------
def onset_run(model: FolkRNN, threads: int, voices: int, seconds: float, period_s: float = 0.010,
              block_s: float = 128 / 48000, synth_ms: float = 0.3) -> dict:
    """A timing thread plays an onset every `period_s` (sleeping to 1.2 ms before it, then spinning,
    as the instrument's scheduler does) and asks a model thread for the next step of `voices` voices;
    a synth thread wakes every `block_s` (128 frames at 48 kHz) and computes for ~`synth_ms`.
    Onset error = when the onset ran minus when it was due."""
    stepper = ours(model, voices, threads)
    previous_switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    stop = threading.Event()
    go = threading.Event()
    step_ns: list[int] = []
    late_blocks: list[float] = []
    partials = np.arange(1, 33, dtype=np.float64)[:, None]
    t_block = np.arange(128) / 48000.0
    reps = 1
    t0 = time.perf_counter()
    for _ in range(20):
        np.sin(2 * np.pi * 220.0 * partials * t_block).sum(axis=0)
    reps = max(1, int(synth_ms / 1000 / ((time.perf_counter() - t0) / 20)))

    def synth():
        due = time.perf_counter()
        while not stop.is_set():
            due += block_s
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            late_blocks.append(time.perf_counter() - due)
            for _ in range(reps):
                np.sin(2 * np.pi * 220.0 * partials * t_block).sum(axis=0)

    def model_thread():
        while not stop.is_set():
            if go.wait(0.1):
                go.clear()
                a = time.perf_counter_ns()
                stepper.step()
                step_ns.append(time.perf_counter_ns() - a)

    workers = [threading.Thread(target=synth, daemon=True), threading.Thread(target=model_thread, daemon=True)]
    for w in workers:
        w.start()
    errors = []
    due = time.perf_counter() + 0.05
    with OtherLoad() as load:
        for _ in range(int(seconds / period_s)):
            due += period_s
            wait = due - time.perf_counter() - 0.0012
            if wait > 0:
                time.sleep(wait)
            while time.perf_counter() < due:
                pass
            errors.append(time.perf_counter() - due)
            go.set()
    stop.set()
    for w in workers:
        w.join(2)
    sys.setswitchinterval(previous_switch)
    e = np.array(errors) * 1e3
    s = np.array(step_ns) / 1e6
    late = np.array(late_blocks) * 1e3
    return {
        "onset_error_p50_ms": round(float(np.median(e)), 4), "onset_error_p99_ms": round(float(np.percentile(e, 99)), 4),
        "onset_error_max_ms": round(float(e.max()), 3), "step_p50_ms": round(float(np.median(s)), 4),
        "step_p99_ms": round(float(np.percentile(s, 99)), 4),
        "synth_late_p99_ms": round(float(np.percentile(late, 99)), 3),
        "synth_blocks_late_over_one_block": int((late > block_s * 1e3).sum()), "synth_blocks": len(late),
        "other_load_cores": load.cores,
    }


# -- report ------------------------------------------------------------------------------------------
def print_table(result: dict) -> None:
    print(f"machine: {os.cpu_count()} cores, load average before {result['load']['loadavg_before']}, "
          f"after {result['load']['loadavg_after']}; model {result['model']}")
    print("per step (ms); 'ours' is the whole Stepper.step() with sampling; the baselines the network plus a softmax")
    for threads in (1, 2):
        table = result[f"threads_{threads}"]
        print(f"\n  {threads} thread{'s' if threads > 1 else ''}   " + "".join(f"{'batch ' + str(b):>26}" for b in BATCHES))
        for name in ("naive_lstmcell", "numpy_reference", "ours", "ours_per_voice"):
            cells = "".join(f"{table[f'batch{b}'][name]['p50_ms']:>12.3f} p50 {table[f'batch{b}'][name]['p99_ms']:>7.3f} p99"
                            if name in table[f'batch{b}'] else f"{'':>26}" for b in BATCHES)
            print(f"  {name:<16}{cells}")
        print(f"  {'ours / 1 voice':<16}" + "".join(f"{table[f'batch{b}']['ours_vs_one_voice']:>25.2f}x" for b in BATCHES))
        print(f"  {'ours: weights':<16}" + "".join(f"{table[f'batch{b}']['ours_weights']:>26}" for b in BATCHES))
        speedup = "".join(f"{table[f'batch{b}']['naive_lstmcell']['p50_ms'] / table[f'batch{b}']['ours']['p50_ms']:>25.1f}x" for b in BATCHES)
        print(f"  {'naive / ours':<16}{speedup}")
        print(f"  {'other load':<16}" + "".join(f"{table[f'batch{b}']['other_load_cores']:>20.2f} cores" for b in BATCHES))
    print("\noffline generation (generate_tunes, batches of 64):")
    for threads in (1, 2):
        o = result["offline"][f"threads_{threads}"]
        print(f"  {threads} thread{'s' if threads > 1 else ' '}: {o['tokens_per_s']:>9.0f} tokens/s  ({o['tokens']} tokens in "
              f"{o['seconds']} s, {o['ended']} tunes ended; other load {o['other_load_cores']} cores)")
    if result.get("onset"):
        print("\nlive loop (onset every 10 ms, synth block every 2.67 ms):")
        for key, o in result["onset"].items():
            print(f"  {key:<18} onset error p50 {o['onset_error_p50_ms']:.3f} p99 {o['onset_error_p99_ms']:.3f} "
                  f"max {o['onset_error_max_ms']:.2f} ms | step p50 {o['step_p50_ms']:.3f} p99 {o['step_p99_ms']:.3f} ms | "
                  f"synth late p99 {o['synth_late_p99_ms']:.2f} ms, {o['synth_blocks_late_over_one_block']}/{o['synth_blocks']} "
                  f"blocks over one block | other load {o['other_load_cores']} cores")
    for precision, d in result.get("reduced_precision", {}).items():
        print(f"\n{precision} weights: batch 1 p50 {d['batch1_p50_ms']:.3f} ms (1 thread); one-step TV from the same state "
              f"max {d['one_step_tv_max']:.1e} (stated tolerance {d['tolerance']:.0e}); after 100 steps on its own "
              f"state mean TV {d['tv_after_100_steps']:.1e}")


def reduced_precision(model: FolkRNN, steps: int) -> dict:
    """Each reduced-precision path against float32: one step from the same state (the weights'
    rounding: what fast_step.TOLERANCE states), then 100 steps on its own state with float32's
    tokens (the drift, which depends on the model), and its batch-1 time on one thread."""
    out = {}
    for precision in ("fp16", "bf16"):
        worst = 0.0
        a, b = ours(model, 4, 1, "float32"), ours(model, 4, 1, precision)
        for _ in range(50):
            for dst, src in zip(b._net.inp + b._net.c_buf, a._net.inp + a._net.c_buf):
                dst[:] = src
            tokens = a.step()
            b.step()
            b._pending[:] = tokens
            p, q = a.readout.probs.double().numpy(), b.readout.probs.double().numpy()
            worst = max(worst, float((0.5 * np.abs(p - q).sum(1)).max()))
        a, b = ours(model, 4, 1, "float32"), ours(model, 4, 1, precision)
        for _ in range(100):
            tokens = a.step()
            b.step()
            b._pending[:] = tokens
        p, q = a.readout.probs.double().numpy(), b.readout.probs.double().numpy()
        drift = float((0.5 * np.abs(p - q).sum(1)).mean())
        fast = ours(model, 1, 1, precision)
        timing = time_interleaved({"x": fast.step}, steps, rounds=1)["x"]
        out[precision] = {"batch1_p50_ms": timing["p50_ms"], "batch1_p99_ms": timing["p99_ms"], "one_step_tv_max": worst,
                          "tv_after_100_steps": drift, "tolerance": fast_step.TOLERANCE[precision]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--quick", action="store_true", help="fewer steps and tunes (a smoke test, not a measurement)")
    parser.add_argument("--model", help="a checkpoint to time (default: the shipped model; 'random': random weights, 3 x 512)")
    parser.add_argument("--tunes", type=int, default=1000, help="tunes for the offline figure (default 1000)")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per implementation and batch")
    parser.add_argument("--onset-seconds", type=float, default=8.0, help="length of each live-loop run")
    args = parser.parse_args(argv)
    if args.quick:
        args.tunes, args.steps, args.onset_seconds = min(args.tunes, 32), min(args.steps, 100), min(args.onset_seconds, 0.5)
    if not fast_step.available():
        print("the fast kernel is unavailable here: nothing to benchmark", file=sys.stderr)
        return 1
    if args.model != "random":
        from instrument.model import checkpoint

        model, _, name = checkpoint.load_or_default(args.model)
    else:
        torch.manual_seed(0)
        model, name = FolkRNN().eval(), "random 3 x 512 (seed 0)"
    threads_before = torch.get_num_threads()
    result: dict = {"model": name, "load": {"loadavg_before": [round(x, 2) for x in os.getloadavg()]}}
    for threads in (1, 2):
        result[f"threads_{threads}"] = step_table(model, threads, args.steps)
    torch.set_num_threads(threads_before)
    result["offline"] = {"threads_1": offline(model, 1, max(1, args.tunes // 4)), "threads_2": offline(model, 2, args.tunes)}
    result["onset"] = {
        f"voices{v}_threads{t}": onset_run(model, t, v, args.onset_seconds) for v in (1, 16) for t in (1, 2)
    }
    result["reduced_precision"] = reduced_precision(model, args.steps)
    result["load"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    headline = fast_step.default_threads(offline=True)  # both cores: what the step can do at best
    for b in BATCHES:
        key = f"batch{b}"
        result[key] = {k: result[f"threads_{headline}"][key][k] for k in ("naive_lstmcell", "numpy_reference", "ours", "ours_per_voice")
                       if k in result[f"threads_{headline}"][key]}
    result["offline_tokens_per_s"] = result["offline"][f"threads_{headline}"]["tokens_per_s"]
    result["headline_threads"] = headline
    result["live_default_threads"] = fast_step.default_threads()
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
