"""Headless PNG figures of the analyses (matplotlib's Agg canvas; no display, no pyplot state).

- ``heatmap``: one layer's h (or c) over the steps of a tune, bar tokens marked;
- ``mean_spectra``: per-layer mean magnitude spectrum against period, one standard error above and
  below, and the output distribution's spectrum (the seed's figure, docs/design.md §3);
- ``unit_spectra``: every unit's spectrum normalised to its own peak, units in band-share order;
- ``output_distribution``: the model's distribution over the steps of a tune, tokens grouped by class;
- ``windows``: Hann and rectangular window spectra with their main-lobe and sidelobe facts;
- ``ablation_chart``: counting, ending and in-mode share against the number of units cut, per set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from instrument.model import vocab
from instrument.analysis.record import ActivationRecording
from instrument.analysis.spectra import Spectra, window_facts, window_magnitude_db
from instrument.model.vocab import TokenClass

SEED_PERIODS = (36, 18, 9, 4.5, 3, 2.25)  # where the seed saw peaks (docs/design.md §3)
_BAR_TOKENS = {vocab.INDEX[t] for t in vocab.tokens_of(TokenClass.BAR)}
_CLASS_ORDER = (
    (TokenClass.PITCH, "pitch"), (TokenClass.REST, "rest"), (TokenClass.DURATION, "duration"),
    (TokenClass.BROKEN, "broken"), (TokenClass.TUPLET, "tuplet"), (TokenClass.BAR, "bar"),
    (TokenClass.CHORD_OPEN, "chord"), (TokenClass.CHORD_CLOSE, "chord"), (TokenClass.METER, "meter"),
    (TokenClass.MODE, "mode"), (TokenClass.START, "start/end"), (TokenClass.END, "start/end"),
)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _period_axis(ax, freqs: np.ndarray) -> None:
    """Frequency on the x axis, labelled in periods (steps)."""
    ticks = [p for p in (64, 36, 18, 12, 9, 6, 4.5, 3, 2.25, 2) if 1 / p <= freqs[-1]]
    ax.set_xticks([1 / p for p in ticks])
    ax.set_xticklabels([f"{p:g}" for p in ticks])
    ax.set_xlim(0, freqs[-1])
    ax.set_xlabel("period (steps); DC at the left edge")


# -- recordings ----------------------------------------------------------------------------
def heatmap(rec: ActivationRecording, tune: int, layer: int, path: str | Path, state: str = "h", steps: int | None = None) -> Path:
    """One layer's h (or c) of one tune (its first ``steps`` steps, default all): units up, steps
    across, bar tokens marked on top."""
    x = rec.sequence(tune, layer, state)[:steps].T  # (hidden, steps)
    tokens = rec.tokens[rec.span(tune)][:steps]
    limit = 1.0 if state == "h" else max(float(np.abs(x).max()), 1e-6)
    fig = _figure(min(4 + x.shape[1] / 25, 24), min(3 + x.shape[0] / 60, 12))
    ax = fig.add_subplot()
    im = ax.imshow(x, aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower")
    bars = [i for i, t in enumerate(tokens) if int(t) in _BAR_TOKENS]
    top = ax.secondary_xaxis("top")
    top.set_xticks(bars)
    top.set_xticklabels([vocab.TOKENS[int(tokens[i])] for i in bars], fontsize=6)
    ax.set_xlabel("step")
    ax.set_ylabel("unit")
    shown = f"first {x.shape[1]} of {rec.lengths()[tune]}" if x.shape[1] < rec.lengths()[tune] else f"{x.shape[1]}"
    ax.set_title(f"layer {layer} {state} over tune {tune} ({shown} steps, {rec.meters[tune]} {rec.modes[tune]}); bar tokens above", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    fig.tight_layout()
    return _save(fig, path)


def output_distribution(rec: ActivationRecording, tune: int, path: str | Path, steps: int | None = None) -> Path:
    """The model's output distribution over the steps of a tune (the first ``steps``, default all),
    tokens grouped by class (pitch tokens by sounding pitch), with the sampled token of each step marked."""
    probs = rec.probs[rec.span(tune)][:steps]
    tokens = rec.tokens[rec.span(tune)][:steps]
    order, groups = _token_order()
    position = np.empty(vocab.SIZE, dtype=int)
    position[order] = np.arange(len(order))
    fig = _figure(min(4 + len(tokens) / 25, 24), 9)
    ax = fig.add_subplot()
    im = ax.imshow(probs[:, order].T, aspect="auto", interpolation="nearest", cmap="Greys", origin="lower",
                   norm=PowerNorm(0.5, vmin=0, vmax=1))  # square-root scale: small probabilities stay visible
    ax.scatter(np.arange(len(tokens)), position[tokens.astype(int)], s=4, c="tab:red", marker="o", linewidths=0, label="sampled")
    centers, labels = [], []
    for label, start, stop in groups:
        ax.axhline(start - 0.5, color="tab:blue", lw=0.4)
        centers.append((start + stop - 1) / 2)
        labels.append(label)
    ax.set_yticks(centers)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("step")
    shown = f"first {len(tokens)} of {rec.lengths()[tune]}" if len(tokens) < rec.lengths()[tune] else f"{len(tokens)}"
    ax.set_title(f"output distribution over tune {tune} ({shown} steps); red: the sampled token", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="probability")
    fig.tight_layout()
    return _save(fig, path)


def _token_order() -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Vocabulary indices grouped by class (pitch tokens low to high), and (label, start, stop) per group."""
    order: list[int] = []
    groups: list[tuple[str, int, int]] = []
    for cls, label in _CLASS_ORDER:
        members = [i for i, c in enumerate(vocab.TOKEN_CLASS) if c is cls]
        if cls is TokenClass.PITCH:
            members.sort(key=_pitch_key)
        if groups and groups[-1][0] == label:
            groups[-1] = (label, groups[-1][1], groups[-1][2] + len(members))
        else:
            groups.append((label, len(order), len(order) + len(members)))
        order += members
    return np.array(order), groups


def _pitch_key(index: int) -> tuple[int, int]:
    acc, letter, octave = vocab.parse_pitch(vocab.TOKENS[index])
    return vocab.natural_midi(letter, octave) + (acc or 0), 0 if acc is None else 1


# -- spectra -------------------------------------------------------------------------------
def mean_spectra(spectra: Spectra, path: str | Path) -> Path:
    """Per-layer mean magnitude spectrum (dB re the peak of layer 1's mean) with one standard error
    above and below; below it the output distribution's (dB re its own peak). The bar band is shaded."""
    freqs = spectra.freqs
    fig = _figure(11, 7.5)
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    ref = float(spectra.layer_mean(1)[0].max()) or 1.0
    for layer in range(1, spectra.layers + 1):
        mean, sem = spectra.layer_mean(layer)
        _band_line(top, freqs, mean, sem, ref, f"layer {layer}")
    mean, sem = spectra.layer_mean(None)
    _band_line(bottom, freqs, mean, sem, float(mean.max()) or 1.0, "output distribution", color="tab:gray")
    lo, hi = spectra.band
    for ax in (top, bottom):
        ax.axvspan(1 / hi, 1 / lo, color="tab:orange", alpha=0.2, lw=0, label=f"band {lo:g}-{hi:g} steps")
        for p in SEED_PERIODS:
            ax.axvline(1 / p, color="k", lw=0.4, ls=":")
        _period_axis(ax, freqs)
        ax.set_ylabel("dB")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    top.set_title(
        f"mean {spectra.state} magnitude spectrum per layer +- 1 standard error "
        f"({spectra.window} window, nfft {spectra.nfft}, {len(spectra.tunes)} tunes; dotted: the seed's peaks)",
        fontsize=9,
    )
    fig.tight_layout()
    return _save(fig, path)


def _band_line(ax, freqs, mean, sem, ref, label, color=None) -> None:
    floor = 1e-12
    db = lambda v: 20 * np.log10(np.maximum(v, floor) / ref)  # noqa: E731
    (line,) = ax.plot(freqs, db(mean), lw=0.9, label=label, color=color)
    ax.fill_between(freqs, db(mean - sem), db(mean + sem), color=line.get_color(), alpha=0.25, lw=0)


def unit_spectra(spectra: Spectra, layer: int, path: str | Path, floor_db: float = -40.0) -> Path:
    """Every unit's magnitude spectrum normalised to its own peak (dB), units in band-share order."""
    order = spectra.ranking(layer)
    power = spectra.power[layer - 1][order]
    peak = power.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = np.where(peak > 0, 10 * np.log10(np.maximum(power, 1e-30) / np.where(peak > 0, peak, 1)), floor_db)
    fig = _figure(10, 7)
    ax = fig.add_subplot()
    im = ax.imshow(np.maximum(db, floor_db), aspect="auto", interpolation="nearest", cmap="magma", origin="upper",
                   extent=(spectra.freqs[0], spectra.freqs[-1], len(order) - 0.5, -0.5))
    _period_axis(ax, spectra.freqs)
    ax.set_ylabel("units, highest band share first (rank)")
    lo, hi = spectra.band
    share = spectra.share[layer - 1]
    counts = ", ".join(f">={100 * t:g}%: {int((share >= t).sum())}" for t in (0.05, 0.04, 0.035))
    ax.set_title(f"layer {layer}: unit spectra, each re its own peak ({spectra.window} window); band {lo:g}-{hi:g}: {counts}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="dB")
    fig.tight_layout()
    return _save(fig, path)


def windows(path: str | Path, length: int = 147) -> Path:
    """Hann and rectangular window spectra of ``length`` (zero-padded), with their facts."""
    fig = _figure(9, 4.5)
    ax = fig.add_subplot()
    for name, color in (("rect", "tab:blue"), ("hann", "tab:red")):
        freqs, db = window_magnitude_db(name, length)
        f = window_facts(name, length)
        keep = freqs <= 0.05
        ax.plot(freqs[keep], db[keep], color=color, lw=0.9,
                label=f"{name}: -6 dB width {f.main_lobe_width:.4f}, first sidelobe {f.first_sidelobe_db:.1f} dB at {f.first_sidelobe:.4f}")
    ax.axhline(-6, color="k", lw=0.4, ls=":")
    ax.set_ylim(-80, 3)
    ax.set_xlabel("frequency (cycles per step)")
    ax.set_ylabel("dB re peak")
    ax.set_title(f"analysis windows of length {length}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# -- ablation ------------------------------------------------------------------------------
def ablation_chart(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Count accuracy, end rate and in-mode share against units cut, one line per set (random: the
    mean over draws, bars one standard deviation)."""
    metrics = (("count_accuracy", "measure-count accuracy"), ("end_rate", "share of tunes that end"), ("in_mode", "notes in the mode"))
    sets = list(dict.fromkeys(r["set"] for r in rows))
    fig = _figure(12, 3.8)
    for k, (key, label) in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        for s in sets:
            mine = sorted((r for r in rows if r["set"] == s), key=lambda r: r["size"])
            x = [r["size"] for r in mine]
            y = [r.get(key, np.nan) for r in mine]
            err = [r.get(key + "_sd", 0.0) for r in mine]
            ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=3, lw=1, label=s)
        ax.set_xlabel("units cut")
        ax.set_title(label, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
