"""Spectral analysis of hidden-state sequences (the seed experiments, docs/design.md §3) and the window facts.

Each unit's sequence over a tune (h, or c, at every body step) is windowed (Hann or rectangular),
zero-padded to ``nfft`` points and transformed (``np.fft.rfft``). Power spectra are normalised by
the window's energy (a periodogram), so tunes of different lengths share one frequency grid and are
averaged power-wise (Welch's method, one segment per tune). Frequency is in cycles per step; the
period in steps is its inverse.

The **band share** of a unit is the share of its (two-sided) power whose period lies in a band,
by default 8.7-9.3 steps: the bar period of a 4/4 reel (8 eighth notes and a bar line). The seed
cut layer-3 units with at least 5% (96 units), 4% (138) and 3.5% (169) of their power there.
Zero padding samples the same continuous spectrum more finely; bins at the band's edges count in
part, so the share barely depends on ``nfft`` once the band spans a few bins (the default grid
of at least 1024 points gives it 7 or more).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instrument.analysis.record import ActivationRecording
from instrument.errors import UsageError
from instrument.live.steering import set_path  # where the live instrument looks

WINDOWS = ("hann", "rect")
BAR_BAND = (8.7, 9.3)  # periods in steps: the bar of a 4/4 reel is about 9 tokens
SEED_THRESHOLDS = (0.05, 0.04, 0.035)  # the seed's cuts: 96, 138 and 169 layer-3 units of folk-rnn v2
MIN_LENGTH = 16  # tunes shorter than this many steps say nothing about a 9-step period
SET_NAME = "periodic"  # the ablation-set name patches use for the bar-periodic ranking


# -- windows and spectra -------------------------------------------------------------------
def make_window(name: str, length: int) -> np.ndarray:
    """The symmetric analysis window: ``hann`` (zero at both ends, as MATLAB's hann) or ``rect``."""
    if name == "hann":
        return np.hanning(length) if length > 1 else np.ones(length)
    if name in ("rect", "rectangular"):
        return np.ones(length)
    raise UsageError(f"window must be one of {WINDOWS}, not {name!r}")


def default_nfft(length: int, pad: int = 4, minimum: int = 1024) -> int:
    """Zero-padded transform length: a power of two at least ``pad`` times ``length``."""
    return int(2 ** int(np.ceil(np.log2(max(minimum, pad * max(length, 1))))))


def frequencies(nfft: int) -> np.ndarray:
    """The rfft grid, cycles per step (0 .. 0.5)."""
    return np.fft.rfftfreq(nfft)


def periods(freqs: np.ndarray) -> np.ndarray:
    """Period in steps of each frequency (inf at DC)."""
    with np.errstate(divide="ignore"):
        return 1.0 / freqs


def one_sided_weights(nfft: int) -> np.ndarray:
    """Weights that make sums over the rfft bins equal two-sided sums (2 except DC and Nyquist)."""
    w = np.full(nfft // 2 + 1, 2.0)
    w[0] = 1.0
    if nfft % 2 == 0:
        w[-1] = 1.0
    return w


def power_spectra(x: np.ndarray, window: str = "hann", nfft: int | None = None, detrend: bool = False) -> np.ndarray:
    """Periodograms of the columns of ``x`` (steps, units): |rfft(w * x, nfft)|^2 / sum(w^2).

    Returns (nfft // 2 + 1, units). ``detrend`` removes each column's mean first (no DC peak).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    steps = x.shape[0]
    nfft = nfft or default_nfft(steps)
    if nfft < steps:
        raise UsageError(f"nfft {nfft} is shorter than a sequence of {steps} steps")
    if detrend:
        x = x - x.mean(axis=0, keepdims=True)
    w = make_window(window, steps)
    spectrum = np.fft.rfft(x * w[:, None], n=nfft, axis=0)
    return (spectrum.real**2 + spectrum.imag**2) / float(np.sum(w**2))


def band_weights(freqs: np.ndarray, band: Sequence[float] = BAR_BAND) -> np.ndarray:
    """How much of each bin lies in ``band``: bin k stands for [f_k - df/2, f_k + df/2], and the
    weight is the share of that interval inside the band (edge bins count in part), so the band
    share does not jump as bins cross the band's edges when ``nfft`` changes."""
    lo, hi = sorted(band)
    if lo <= 0:
        raise UsageError(f"band periods must be positive, not {band}")
    df = freqs[1] - freqs[0]
    f_lo, f_hi = 1.0 / hi, 1.0 / lo
    overlap = np.minimum(freqs + df / 2, f_hi) - np.maximum(freqs - df / 2, f_lo)
    return np.clip(overlap / df, 0.0, 1.0)


def band_share(power: np.ndarray, freqs: np.ndarray, band: Sequence[float] = BAR_BAND, axis: int = -1) -> np.ndarray:
    """Share of the (two-sided) power in ``band``, along ``axis`` of the frequency bins."""
    power = np.moveaxis(np.asarray(power, dtype=np.float64), axis, -1)
    weights = one_sided_weights(2 * (power.shape[-1] - 1))
    inside = band_weights(freqs, band)
    if inside.sum() < 1.0:
        raise UsageError(f"the band {tuple(band)} spans less than one frequency bin; use a larger --nfft")
    total = power @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, (power @ (weights * inside)) / total, 0.0)
    return share


def rank_units(share: np.ndarray) -> np.ndarray:
    """Units by band share, highest first (ties: lower unit number first)."""
    return np.argsort(-np.asarray(share), kind="stable")


# -- window facts --------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowFacts:
    """The main lobe and first sidelobe of a window's zero-padded magnitude spectrum.

    Frequencies are in cycles per step ("Hz" at one step per second, as the seed writes them).
    ``main_lobe_width`` is twice the frequency of the -6 dB point, the seed's definition.
    """

    window: str
    length: int
    nfft: int
    half_width_6db: float
    first_null: float
    first_sidelobe: float  # where the first sidelobe peaks
    first_sidelobe_db: float  # its level relative to the main lobe peak (negative)

    @property
    def main_lobe_width(self) -> float:
        return 2.0 * self.half_width_6db

    def support(self, period: float) -> tuple[float, float]:
        """Periods (longest, shortest) covered by the -6 dB main lobe modulated to ``period``."""
        return _period_pair(period, self.half_width_6db)

    def sidelobes_at(self, period: float) -> tuple[float, float]:
        """Periods (longest, shortest) of the first sidelobes of the window modulated to ``period``."""
        return _period_pair(period, self.first_sidelobe)


def _period_pair(period: float, offset: float) -> tuple[float, float]:
    f0 = 0.0 if np.isinf(period) else 1.0 / period
    low, high = f0 - offset, f0 + offset
    return (float(np.inf) if low <= 0 else 1.0 / low, 1.0 / high)


def window_magnitude_db(name: str, length: int, nfft: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, magnitude in dB relative to the peak at DC) of a zero-padded window."""
    w = make_window(name, length)
    mag = np.abs(np.fft.rfft(w, n=nfft))
    with np.errstate(divide="ignore"):
        return frequencies(nfft), 20.0 * np.log10(mag / mag[0])


def window_facts(name: str, length: int = 147, nfft: int = 1 << 16) -> WindowFacts:
    """Main-lobe -6 dB point, first null and first sidelobe of a window, from its spectrum."""
    freqs, db = window_magnitude_db(name, length, nfft)
    below = np.flatnonzero(db < -6.0)
    if not len(below):
        raise ValueError("the window never falls 6 dB below its peak")
    k = below[0]  # interpolate the -6 dB crossing between bins k-1 and k
    f6 = freqs[k - 1] + (db[k - 1] + 6.0) / (db[k - 1] - db[k]) * (freqs[k] - freqs[k - 1])
    rising = np.flatnonzero(np.diff(db[k:]) > 0)
    null = k + rising[0]  # the first minimum after the main lobe
    falling = np.flatnonzero(np.diff(db[null:]) < 0)
    peak = null + falling[0]  # the first maximum after it
    return WindowFacts(name, length, nfft, float(f6), float(freqs[null]), float(freqs[peak]), float(db[peak]))


# -- analysis of a recording ---------------------------------------------------------------
@dataclass
class Spectra:
    """Per-unit mean power spectra of a recording, their band shares, and what they came from."""

    freqs: np.ndarray  # (F,) cycles per step
    power: list[np.ndarray]  # per layer (hidden, F): mean periodogram over tunes
    output_power: np.ndarray  # (vocab, F): the same for the output distribution's sequences
    share: np.ndarray  # (layers, hidden): share of power in ``band``
    window: str
    nfft: int
    band: tuple[float, float]
    state: str
    detrend: bool
    tunes: list[int]  # the tunes analysed (long enough)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> int:
        return len(self.power)

    @property
    def periods(self) -> np.ndarray:
        return periods(self.freqs)

    def ranking(self, layer: int) -> np.ndarray:
        """Units of ``layer`` (1-based) by band share, highest first."""
        return rank_units(self.share[layer - 1])

    def threshold_units(self, layer: int, threshold: float) -> list[int]:
        """Units of ``layer`` with at least ``threshold`` of their power in the band, in rank order."""
        order = self.ranking(layer)
        return [int(u) for u in order if self.share[layer - 1, u] >= threshold]

    def layer_mean(self, layer: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Mean magnitude spectrum over the units of ``layer`` (None: the output distribution's
        tokens) and its standard error, both (F,)."""
        power = self.output_power if layer is None else self.power[layer - 1]
        if layer is None:
            power = power[power.sum(axis=1) > 0]  # tokens that never get probability say nothing
        mag = np.sqrt(power)
        mean = mag.mean(axis=0)
        sem = mag.std(axis=0, ddof=1) / np.sqrt(len(mag)) if len(mag) > 1 else np.zeros_like(mean)
        return mean, sem

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez(
            path, freqs=self.freqs, power=np.stack(self.power).astype(np.float32), output_power=self.output_power.astype(np.float32),
            share=self.share, tunes=np.array(self.tunes, dtype=np.int64),
            meta=np.array(json.dumps(self.describe())),
        )
        return path

    def describe(self) -> dict[str, Any]:
        return {
            "window": self.window, "nfft": self.nfft, "band": list(self.band), "state": self.state, "detrend": self.detrend,
            "tunes": len(self.tunes), **{k: v for k, v in self.meta.items() if k not in ("window", "nfft", "band", "state")},
        }


def analyze(
    rec: ActivationRecording,
    window: str = "hann",
    nfft: int | None = None,
    band: Sequence[float] = BAR_BAND,
    state: str = "h",
    detrend: bool = False,
    min_length: int = MIN_LENGTH,
    tunes: Sequence[int] | None = None,
) -> Spectra:
    """Spectra of every unit of every layer (and of every output token) over ``tunes`` (default all
    tunes of at least ``min_length`` steps), averaged power-wise over tunes."""
    make_window(window, 2)  # check the name before the work
    lengths = rec.lengths()
    chosen = [i for i in (range(rec.n_tunes) if tunes is None else tunes) if lengths[i] >= min_length]
    if not chosen:
        raise UsageError(f"no tune of at least {min_length} steps to analyse; record more or longer tunes")
    nfft = nfft or default_nfft(int(max(lengths[i] for i in chosen)))
    if nfft < max(lengths[i] for i in chosen):
        raise UsageError(f"--nfft {nfft} is shorter than the longest tune ({max(lengths[i] for i in chosen)} steps)")
    freqs = frequencies(nfft)
    states = rec.state(state)
    power = []
    for layer in range(rec.layers):
        total = np.zeros((len(freqs), rec.hidden))
        for i in chosen:
            total += power_spectra(states[layer, rec.span(i)], window, nfft, detrend)
        power.append((total / len(chosen)).T)
    out = np.zeros((len(freqs), rec.probs.shape[1]))
    for i in chosen:
        out += power_spectra(rec.probs[rec.span(i)], window, nfft, detrend)
    share = np.stack([band_share(p, freqs, band) for p in power])
    meta = {"model": rec.meta.get("model", ""), "seed": rec.meta.get("seed"), "steps": int(sum(lengths[i] for i in chosen))}
    return Spectra(freqs, power, (out / len(chosen)).T, share, window, nfft, (float(min(band)), float(max(band))),
                   state, detrend, chosen, meta)


# -- rankings and ablation-set files -------------------------------------------------------
def threshold_label(threshold: float) -> str:
    """0.05 -> '5pct', 0.035 -> '3p5pct' (no dot: a set name with a dot would read as a path)."""
    text = f"{100 * threshold:g}".replace(".", "p")
    return f"{text}pct"


def criterion(spectra: Spectra) -> str:
    lo, hi = spectra.band
    return (
        f"share of power at periods {lo:g}-{hi:g} steps in each unit's {spectra.state} sequence "
        f"({spectra.window} window, nfft {spectra.nfft}{', mean removed' if spectra.detrend else ''}, "
        f"mean periodogram over {len(spectra.tunes)} tunes), highest first"
    )


def ranking_json(spectra: Spectra, source: str = "") -> dict[str, Any]:
    """Every layer's units ranked by band share, with the shares and the seed's threshold sets."""
    layers = []
    for layer in range(1, spectra.layers + 1):
        order = spectra.ranking(layer)
        share = spectra.share[layer - 1]
        layers.append({
            "layer": layer,
            "units": [int(u) for u in order],
            "share": [round(float(share[u]), 6) for u in order],
            "thresholds": {f"{t:g}": len(spectra.threshold_units(layer, t)) for t in SEED_THRESHOLDS},
        })
    return {"criterion": criterion(spectra), "model": spectra.meta.get("model", ""), "recording": source,
            **spectra.describe(), "layers": layers}


def ablation_sets(spectra: Spectra, layer: int, name: str = SET_NAME, source: str = "") -> dict[str, dict[str, Any]]:
    """The ablation-set files of one layer: ``<name>`` ranks every unit (depth 1.0 cuts them all);
    ``<name>-5pct`` etc. hold only the units above the seed's thresholds, in rank order."""
    order = [int(u) for u in spectra.ranking(layer)]
    share = spectra.share[layer - 1]
    thresholds = {f"{t:g}": spectra.threshold_units(layer, t) for t in SEED_THRESHOLDS}
    common = {"layer": layer, "criterion": criterion(spectra), "model": spectra.meta.get("model", ""),
              "recording": source, **spectra.describe()}
    sets = {name: {**common, "units": order, "share": [round(float(share[u]), 6) for u in order], "thresholds": thresholds}}
    for t in SEED_THRESHOLDS:
        units = thresholds[f"{t:g}"]
        sets[f"{name}-{threshold_label(t)}"] = {
            **common, "units": units, "share": [round(float(share[u]), 6) for u in units], "threshold": t,
            "criterion": criterion(spectra).replace(", highest first", f"; units with at least {100 * t:g}%, highest first"),
        }
    return sets


def write_sets(spectra: Spectra, directory: str | Path, name: str = SET_NAME, source: str = "") -> list[Path]:
    """Write every layer's ablation-set files into ``directory``; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for layer in range(1, spectra.layers + 1):
        for set_name, data in ablation_sets(spectra, layer, name, source).items():
            path = set_path(directory, set_name, layer)
            path.write_text(json.dumps(data, indent=1) + "\n")
            written.append(path)
    return written
