"""Quality of a model's tunes beside its training tunes and folk-rnn's own (a benchmark).

    python bench/quality.py [--model session|songs|PATH] [--data CORPUS_DIR] [-n 200] [--seed 1]
                            [--compare tests/data/folkrnn_v2_samples.txt] [--json]

One table, three columns: tunes the model writes at T = 1 with meters and modes drawn by the
model itself; the tunes it was trained on (its own selection of the corpus, read from the
corpus's ``.meta.tsv``); and, given a file in the tokens format, other tunes (by default the 64
tunes of the original folk-rnn v2). Figures:
- form (``instrument.music.form``): share of tunes with a repeat, with two repeated parts, with
  first/second endings; share of parts that are 8 bars long as a player counts them; median body
  length in tokens; share of each mode and meter, and dorian + mixolydian together;
- end rate: share of tunes that end with </s> within 1000 tokens;
- measure-count accuracy: share of non-pickup bars whose length equals the meter (our rules),
  and the same judged by abc2midi (an independent ABC reader): share of bars it does not warn about;
- copying (the seeds' check): per tune, the longest run of consecutive bars equal to consecutive
  bars of one tune of the whole training corpus; the share of tunes copying 4 or more bars;
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
from instrument.model import vocab  # noqa: E402
from instrument.music.form import tune_form  # noqa: E402
from instrument.music.notes import tune_notes  # noqa: E402
from instrument.music.tunes import BAR_TOKENS, Tune, parse_tunes  # noqa: E402
from instrument.training.train import read_split  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"end_rate": 0.97, "count_accuracy_abc2midi": 0.95, "copy4_share": 0.10, "two_repeated_parts": 0.60,
           "repeat": 0.80, "body_tokens_median": 120}


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
    if not shutil.which("abc2midi") or not tunes:
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


def form_figures(tunes: list[Tune]) -> dict:
    """The form, mode and meter shares of a set of tunes (one column of the table)."""
    forms = [tune_form(t) for t in tunes]
    parts = [p for f in forms for p in f.parts]
    n = max(len(tunes), 1)
    modes = Counter(t.mode for t in tunes)
    meters = Counter(t.meter for t in tunes)
    return {
        "tunes": len(tunes),
        "repeat": sum(f.has_repeat for f in forms) / n,
        "two_repeated_parts": sum(f.two_repeated_parts for f in forms) / n,
        "endings": sum(f.has_endings for f in forms) / n,
        "eight_bar_parts": sum(p.bars == 8 for p in parts) / max(len(parts), 1),
        "body_tokens_median": float(np.median([len(t.body) for t in tunes])) if tunes else 0.0,
        "modes": {m: modes[m] / n for m in vocab.MODES},
        "dorian_mixolydian": (modes["dor"] + modes["mix"]) / n,
        "meters": {m: meters[m] / n for m in vocab.METERS},
    }


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


def column(tunes: list[Tune], abc2midi_sample: list[Tune] | None = None) -> dict:
    out = form_figures(tunes)
    out["end_rate"] = sum(t.ended for t in tunes) / max(len(tunes), 1)
    out["count_accuracy"] = count_accuracy(tunes)
    out["count_accuracy_abc2midi"] = abc2midi_accuracy(tunes if abc2midi_sample is None else abc2midi_sample)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="session, songs or a checkpoint (default: the default model, session)")
    ap.add_argument("--data", help="corpus directory with train.txt (default: the one the model was trained on)")
    ap.add_argument("-n", type=int, default=200, help="tunes to sample (default 200)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=1000)
    ap.add_argument("--compare", default=str(ROOT / "tests" / "data" / "folkrnn_v2_samples.txt"),
                    help="a third column: tunes in the tokens format (default: folk-rnn v2's 64 samples; '' for none)")
    ap.add_argument("--training-sample", type=int, default=300,
                    help="training tunes abc2midi reads for its column (default 300; all figures else use every tune)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    model, meta, where = checkpoint.load_or_default(args.model)
    config = meta.get("train_config", {})
    data = Path(args.data or config.get("data", ""))
    if not (data / "train.txt").is_file():
        ap.error(f"no training corpus at {data}; give --data DIR (built by 'run.py corpus')")
    everything = parse_tunes((data / "train.txt").read_text(), source=str(data / "train.txt"))
    trained, _ = read_split(data / "train.txt", tuple(config.get("collections") or ()), int(config.get("min_repeated_parts") or 0))

    started = time.perf_counter()
    tunes = generate_tunes(model, args.n, None, None, temperature=1.0, seed=args.seed, max_tokens=args.max_tokens)
    seconds = time.perf_counter() - started

    index = CopyIndex(everything)
    runs = [index.longest_run(t) for t in tunes]
    by_mode: dict[str, float] = {}
    for mode in sorted({t.mode for t in tunes}):
        gen = [t for t in tunes if t.mode == mode]
        ref = [t for t in trained if t.mode == mode]
        if gen and ref:
            by_mode[mode] = jensen_shannon(pitch_class_histogram(gen), pitch_class_histogram(ref))
    valid = meta.get("valid_loss") or []
    sample_rng = np.random.default_rng(args.seed)
    sample = [trained[i] for i in sorted(sample_rng.choice(len(trained), size=min(args.training_sample, len(trained)), replace=False))]
    columns = {"generated": column(tunes), "training": column(trained, sample)}
    columns["training"]["end_rate"] = None  # every corpus tune ends: not a figure
    if args.compare:
        other = parse_tunes(Path(args.compare).read_text(), source=args.compare)
        columns[Path(args.compare).stem] = column(other)
        columns[Path(args.compare).stem]["end_rate"] = None  # a tokens file does not mark ends
    generated = columns["generated"]
    generated.update({
        "copy_longest_run_median": float(np.median(runs)),
        "copy_longest_run_p90": float(np.percentile(runs, 90)),
        "copy4_share": float(np.mean([r >= 4 for r in runs])),
        "pitch_class_jsd_by_mode": by_mode,
    })
    report = {"model": where, "tunes": len(tunes), "seed": args.seed, "generation_seconds": seconds,
              "valid_loss_best": min(valid) if valid else None, "columns": columns}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print("\n".join(table_lines(report)))
    return 0


def table_lines(report: dict) -> list[str]:
    """The report as one Markdown table: a row per figure, a column per set of tunes, targets last."""
    columns = report["columns"]
    names = list(columns)
    rows: list[tuple[str, str, object]] = [
        ("tunes", "tunes", None),
        ("with a repeat", "repeat", f">= {TARGETS['repeat']:.0%}"),
        ("with two repeated parts", "two_repeated_parts", f">= {TARGETS['two_repeated_parts']:.0%}"),
        ("with first/second endings", "endings", None),
        ("parts of 8 bars", "eight_bar_parts", None),
        ("median body length (tokens)", "body_tokens_median", f">= {TARGETS['body_tokens_median']}"),
        ("dorian + mixolydian", "dorian_mixolydian", "within 5 points of training"),
    ]
    rows += [(f"mode {m}", ("modes", m), None) for m in vocab.MODES]
    rows += [(f"meter {m}", ("meters", m), None) for m in vocab.METERS]
    rows += [
        ("end with </s> within 1000 tokens", "end_rate", f">= {TARGETS['end_rate']:.0%}"),
        ("bars right, our rules", "count_accuracy", None),
        ("bars right, abc2midi", "count_accuracy_abc2midi", f">= {TARGETS['count_accuracy_abc2midi']:.0%}"),
        ("tunes copying >= 4 training bars", "copy4_share", f"<= {TARGETS['copy4_share']:.0%}"),
        ("longest copied run, median bars", "copy_longest_run_median", None),
        ("longest copied run, p90 bars", "copy_longest_run_p90", None),
    ]
    rows += [(f"pitch-class JSD vs training, {m} (bits)", ("pitch_class_jsd_by_mode", m), None)
             for m in columns["generated"].get("pitch_class_jsd_by_mode", {})]
    lines = [f"model: {report['model']} ({report['tunes']} tunes at T = 1, meters and modes drawn by the model, "
             f"seed {report['seed']}, {report['generation_seconds']:.0f} s)",
             "", "| figure | " + " | ".join(names) + " | target |", "|---|" + "---:|" * len(names) + "---|"]
    for label, key, target in rows:
        cells = []
        for name in names:
            value = columns[name]
            for part in (key if isinstance(key, tuple) else (key,)):
                value = value.get(part) if isinstance(value, dict) else None
            cells.append(_cell(key, value))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target or ''} |")
    if report["valid_loss_best"] is not None:
        lines.append(f"\nbest validation loss: {report['valid_loss_best']:.4f} nats/token")
    return lines


def _cell(key, value) -> str:
    if value is None:
        return "n/a"
    name = key[0] if isinstance(key, tuple) else key
    if name in ("tunes",):
        return f"{value:d}"
    if name.startswith(("body_tokens", "copy_longest")):
        return f"{value:.0f}"
    if name == "pitch_class_jsd_by_mode":
        return f"{value:.4f}"
    return f"{100 * value:.1f}%"


if __name__ == "__main__":
    sys.exit(main())
