"""The seed ablation experiment (docs/design.md §3) on our model: cut units, then see whether the model still counts.

For each unit set and size, the same ``n`` tunes (same seed, same settings) are generated with
the first ``size`` units of the set cut on one layer, and measured:

- ``count_accuracy``: share of the written bars that are not pickups whose ``ok`` is true
  (``notes.tune_notes``; a full bar, or a short closing bar), over all tunes;
- ``end_rate``: share of tunes that write ``</s>`` within the token limit;
- pitch statistics of the written notes: ``in_mode`` (share of notes whose pitch class is in the
  tune's mode), ``pitch_mean``, ``pitch_sd`` (spread within a tune, averaged over tunes),
  ``step_share`` (share of melodic intervals of at most 2 semitones), ``mean_interval``.

Sets: ``periodic`` is the bar-periodic ranking (highest share of power at periods 8.7-9.3 steps
first), from a set file or computed from a fresh recording of the same model and seed;
``random`` is a seeded random permutation of the layer's units, several draws, averaged (each
draw is one permutation whose first ``size`` units are cut, so sizes nest, as an ablation depth
sweeps them live). Any other name is an ablation-set file (or a set installed beside the model).
Size 0 is the untouched model, generated once and shared by every set.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from instrument.errors import UsageError
from instrument.model.generate import generate_tunes
from instrument.model.network import FolkRNN
from instrument.music.notes import tune_notes
from instrument.live.params import SCALES
from instrument.model.controls import Ablation, Controls
from instrument.music.tunes import Tune

SEED_SIZES = (0, 48, 96, 138, 169)  # none, half the 5% set, and the seed's 5%, 4% and 3.5% cuts
MODE_SCALES = {"maj": SCALES["major"], "min": SCALES["minor"], "dor": SCALES["dorian"], "mix": SCALES["mixolydian"]}
REQUIRED_KEYS = ("set", "size", "count_accuracy", "end_rate")
_AVERAGED = ("count_accuracy", "end_rate", "in_mode", "pitch_mean", "pitch_sd", "step_share", "mean_interval", "tokens_mean")


def tune_metrics(tunes: Sequence[Tune]) -> dict[str, float | int]:
    """Counting, ending and pitch statistics of a list of tunes (see the module docstring)."""
    bars = ok = 0
    pitches_all: list[int] = []
    in_mode = 0
    sds, intervals = [], []
    for tune in tunes:
        score = tune_notes(tune, repeats=False)
        counted = [b for b in score.bars if not b.pickup]
        bars += len(counted)
        ok += sum(b.ok for b in counted)
        pitches = [n.pitch for n in score.notes]
        pitches_all += pitches
        scale = MODE_SCALES[tune.mode]
        in_mode += sum((p % 12) in scale for p in pitches)
        if len(pitches) >= 2:
            sds.append(float(np.std(pitches)))
            intervals += list(np.abs(np.diff(pitches)))
    nan = float("nan")
    return {
        "tunes": len(tunes),
        "bars": bars,
        "count_accuracy": ok / bars if bars else nan,
        "end_rate": float(np.mean([t.ended for t in tunes])) if tunes else nan,
        "notes": len(pitches_all),
        "in_mode": in_mode / len(pitches_all) if pitches_all else nan,
        "pitch_mean": float(np.mean(pitches_all)) if pitches_all else nan,
        "pitch_sd": float(np.mean(sds)) if sds else nan,
        "step_share": float(np.mean(np.array(intervals) <= 2)) if intervals else nan,
        "mean_interval": float(np.mean(intervals)) if intervals else nan,
        "tokens_mean": float(np.mean([len(t.body) for t in tunes])) if tunes else nan,
    }


def random_order(hidden: int, layer: int, seed: int | None, draw: int) -> list[int]:
    """Draw ``draw`` of the random unit order for ``layer`` (1-based), seeded."""
    rng = np.random.default_rng([0 if seed is None else seed, layer, draw, 0xAB1A7E])
    return [int(u) for u in rng.permutation(hidden)]


def run_ablation(
    model: FolkRNN,
    layer: int,
    orders: Mapping[str, Sequence[int] | None],
    sizes: Sequence[int] = SEED_SIZES,
    n: int = 64,
    seed: int | None = 0,
    draws: int = 3,
    mode: str = "output",
    meter: str | None = None,
    tune_mode: str | None = None,
    temperature: float = 1.0,
    max_tokens: int = 600,
    batch: int = 64,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (set, size), sets in the order given. ``orders`` maps a set name to its ranked
    units, or to None for ``random`` (``draws`` seeded permutations, metrics averaged; the
    ``*_sd`` keys give the spread over draws)."""
    hidden, layers = model.config.hidden, model.config.layers
    if not 1 <= layer <= layers:
        raise UsageError(f"--layer {layer} out of range: the model has layers 1..{layers}")
    if any(s < 0 or s > hidden for s in sizes):
        raise UsageError(f"sizes must lie in 0..{hidden} (layer {layer} has {hidden} units), not {list(sizes)}")
    for name, order in orders.items():
        if order is not None and max(sizes) > len(order):
            raise UsageError(f"set {name!r} holds {len(order)} units, fewer than size {max(sizes)}")
    if draws < 1:
        raise UsageError("--draws must be at least 1")

    cache: dict[tuple[int, ...], dict[str, Any]] = {}

    def measure(units: Sequence[int], label: str) -> dict[str, Any]:
        key = tuple(sorted(int(u) for u in units))
        if key not in cache:
            if progress:
                progress(label)
            controls = Controls(ablation=Ablation({layer - 1: list(key)}, mode))
            tunes = generate_tunes(model, n, meter, tune_mode, (), temperature, seed, max_tokens, batch, controls=controls)
            cache[key] = tune_metrics(tunes)
        return cache[key]

    rows = []
    for name, order in orders.items():
        for size in sizes:
            if order is None:
                runs = [measure(random_order(hidden, layer, seed, d)[:size], f"{name} size {size} draw {d + 1}/{draws}")
                        for d in range(draws if size else 1)]
            else:
                runs = [measure(list(order)[:size], f"{name} size {size}")]
            row: dict[str, Any] = {"set": name, "size": size, "layer": layer, "draws": len(runs), "tunes": n}
            for key in _AVERAGED:
                values = np.array([r[key] for r in runs], dtype=float)
                row[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
                if len(runs) > 1 and key in ("count_accuracy", "end_rate", "in_mode"):
                    row[key + "_sd"] = float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")
            row["bars"] = int(np.mean([r["bars"] for r in runs]))
            row["notes"] = int(np.mean([r["notes"] for r in runs]))
            rows.append(row)
    return rows


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]] | None = None) -> str:
    """Sets side by side, one line per size: count accuracy, end rate, in-mode share, pitch spread."""
    columns = columns or (("count_accuracy", "count"), ("end_rate", "end"), ("in_mode", "in-mode"), ("pitch_sd", "p-sd"))
    sets = list(dict.fromkeys(r["set"] for r in rows))
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    by = {(r["set"], r["size"]): r for r in rows}
    cell = 7
    group = len(columns) * (cell + 1) - 1
    titles = []
    for s in sets:
        draws = max(r["draws"] for r in rows if r["set"] == s)
        titles.append((s if draws == 1 else f"{s} (mean of {draws})")[:group].center(group))
    lines = ["size  | " + " | ".join(titles)]
    lines.append("      | " + " | ".join(" ".join(f"{label:>{cell}}" for _, label in columns) for _ in sets))
    lines.append("-" * len(lines[-1]))
    for size in sizes:
        cells = []
        for s in sets:
            r = by.get((s, size))
            cells.append(" ".join(
                f"{'-':>{cell}}" if r is None or r.get(k) is None or np.isnan(r[k]) else f"{r[k]:>{cell}.3f}"
                for k, _ in columns
            ))
        lines.append(f"{size:>5} | " + " | ".join(cells))
    return "\n".join(lines)
