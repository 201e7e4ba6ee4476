"""Quality of a model's tunes: ending, bar counting, copying, pitch-class fit (a benchmark).

    python bench/quality.py [--model M] [--data CORPUS_DIR] [-n 200] [--seed 1] [--json]

Tunes are sampled at T = 1 with meters and modes drawn in the training corpus's proportions.
Figures:
- end rate: share of tunes that end with </s> within 1000 tokens;
- measure-count accuracy: share of non-pickup bars whose length equals the meter (our rules),
  and the same judged by abc2midi (an independent ABC reader): share of bars it does not warn about;
- copying (the seeds' check): per tune, the longest run of consecutive bars equal to consecutive
  bars of one training tune; the share of tunes copying 4 or more bars;
- Jensen-Shannon divergence (bits) between pitch-class histograms of generated and training
  tunes, per mode (the DeepSymphony metric);
- the model's validation loss, from its metadata.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instrument.model import checkpoint  # noqa: E402
from instrument.model.generate import generate_tunes  # noqa: E402
from instrument.music.notes import tune_notes  # noqa: E402
from instrument.music.tunes import BAR_TOKENS, Tune, parse_tunes  # noqa: E402

TARGETS = {"end_rate": 0.97, "count_accuracy": 0.95, "copy4_share": 0.10}


def bars_of(tune: Tune) -> list[tuple[str, ...]]:
    """The tune's bars as token tuples (bar tokens are the separators, not part of a bar)."""
    bars, current = [], []
    for token in tune.body:
        if token in BAR_TOKENS:
            if current:
                bars.append(tuple(current))
            current = []
        else:
            current.append(token)
    if current:
        bars.append(tuple(current))
    return bars


class CopyIndex:
    """Finds the longest run of consecutive bars a tune shares with one training tune."""

    def __init__(self, training: list[Tune]):
        self.where: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
        for t, tune in enumerate(training):
            for j, bar in enumerate(bars_of(tune)):
                self.where[bar].append((t, j))

    def longest_run(self, tune: Tune) -> int:
        best, previous = 0, {}
        for bar in bars_of(tune):
            current = {}
            for t, j in self.where.get(bar, ()):
                run = previous.get((t, j - 1), 0) + 1
                current[(t, j)] = run
                best = max(best, run)
            previous = current
        return best


def count_accuracy(tunes: list[Tune]) -> float:
    ok = total = 0
    for tune in tunes:
        for bar in tune_notes(tune, repeats=False).bars:
            if bar.pickup:
                continue
            total += 1
            ok += bar.ok
    return ok / max(total, 1)


def abc2midi_accuracy(tunes: list[Tune]) -> float | None:
    """Share of bars abc2midi does not warn about, over all bars it reads (None without it)."""
    if not shutil.which("abc2midi"):
        return None
    warned = total = 0
    with tempfile.TemporaryDirectory() as d:
        for i, tune in enumerate(tunes, 1):
            path = Path(d) / f"t{i}.abc"
            path.write_text(tune.to_abc(i))
            result = subprocess.run(["abc2midi", str(path), "-o", str(Path(d) / "t.mid")], capture_output=True, text=True)
            warned += len(set(re.findall(r"Bar (\d+) has", result.stdout + result.stderr)))
            total += max(len(tune_notes(tune, repeats=False).bars), 1)
    return 1.0 - warned / max(total, 1)


def pitch_class_histogram(tunes: list[Tune]) -> np.ndarray:
    counts = np.zeros(12)
    for tune in tunes:
        for note in tune_notes(tune, repeats=False).notes:
            counts[note.pitch % 12] += 1
    return counts / max(counts.sum(), 1)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JS divergence in bits (0 = same distribution, 1 = disjoint)."""
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: the shipped model)")
    ap.add_argument("--data", help="corpus directory with train.txt (default: the one the model was trained on)")
    ap.add_argument("-n", type=int, default=200, help="tunes to sample (default 200)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    model, meta, where = checkpoint.load_or_default(args.model)
    data = Path(args.data or meta.get("train_config", {}).get("data", ""))
    if not (data / "train.txt").is_file():
        ap.error(f"no training corpus at {data}; give --data DIR (built by 'run.py corpus')")
    training = parse_tunes((data / "train.txt").read_text(), source=str(data / "train.txt"))

    # meters and modes in the corpus's proportions
    rng = np.random.default_rng(args.seed)
    combos = Counter((t.meter, t.mode) for t in training)
    keys = sorted(combos)
    weights = np.array([combos[k] for k in keys], dtype=float)
    draws = Counter(keys[i] for i in rng.choice(len(keys), size=args.n, p=weights / weights.sum()))

    started = time.perf_counter()
    tunes: list[Tune] = []
    for number, ((meter, mode), count) in enumerate(sorted(draws.items())):
        tunes += generate_tunes(model, count, meter, mode, temperature=1.0, seed=args.seed * 1000 + number, max_tokens=args.max_tokens)
    seconds = time.perf_counter() - started

    index = CopyIndex(training)
    runs = [index.longest_run(t) for t in tunes]
    by_mode: dict[str, float] = {}
    for mode in sorted({t.mode for t in tunes}):
        gen = [t for t in tunes if t.mode == mode]
        ref = [t for t in training if t.mode == mode]
        if gen and ref:
            by_mode[mode] = jensen_shannon(pitch_class_histogram(gen), pitch_class_histogram(ref))
    valid = meta.get("valid_loss") or []
    report = {
        "model": where,
        "tunes": len(tunes),
        "end_rate": sum(t.ended for t in tunes) / len(tunes),
        "count_accuracy": count_accuracy(tunes),
        "count_accuracy_abc2midi": abc2midi_accuracy(tunes),
        "copy_longest_run_median": float(np.median(runs)),
        "copy_longest_run_p90": float(np.percentile(runs, 90)),
        "copy4_share": float(np.mean([r >= 4 for r in runs])),
        "pitch_class_jsd_by_mode": by_mode,
        "valid_loss_best": min(valid) if valid else None,
        "generation_seconds": seconds,
        "tokens_per_tune_median": float(np.median([len(t.body) for t in tunes])),
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"model: {where}  ({len(tunes)} tunes at T = 1, corpus proportions; {seconds:.0f} s)")
    rows = [
        ("end with </s> within 1000 tokens", report["end_rate"], f">= {TARGETS['end_rate']:.0%}"),
        ("measure-count accuracy (our rules)", report["count_accuracy"], f">= {TARGETS['count_accuracy']:.0%}"),
        ("bars abc2midi accepts", report["count_accuracy_abc2midi"], ""),
        ("tunes copying >= 4 bars", report["copy4_share"], f"<= {TARGETS['copy4_share']:.0%}"),
    ]
    for label, value, target in rows:
        shown = "n/a" if value is None else f"{value:.1%}"
        print(f"  {label:<36} {shown:>8}   {target}")
    print(f"  longest copied run: median {report['copy_longest_run_median']:.0f} bars, p90 {report['copy_longest_run_p90']:.0f}")
    for mode, jsd in by_mode.items():
        print(f"  pitch-class JSD vs training, {mode}: {jsd:.4f} bits")
    if report["valid_loss_best"] is not None:
        print(f"  best validation loss: {report['valid_loss_best']:.4f} nats/token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
