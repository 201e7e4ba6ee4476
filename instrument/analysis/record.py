"""Record generation: every step's token, each layer's h and c, and the output distribution.

A recording is one ``.npz`` file (numpy's zip of arrays, read with ``allow_pickle=False``)::

    format    "folk-instrument-recording"      version   1
    meta      JSON text: model, seed, n, temperature, meter, mode, max_tokens, layers, hidden,
              dtype, ablation (1-based layer -> units) ...
    tokens    (T,) int16     vocabulary index of the token sampled at each step, all tunes end to end
    offsets   (n+1,) int64   tune i is steps offsets[i]:offsets[i+1]
    h, c      (layers, T, hidden) float16 (or float32)   the state that produced the step's token
    probs     (T, vocab) float32   the model's own distribution at that step, softmax(logits)
    meters, modes  (n,) str    ended (n,) bool   (the tune wrote ``</s>`` within max_tokens)

Steps are the body steps the model samples (the header is not included). Step t of a tune feeds
the previous token, giving ``h[:, t]``, ``c[:, t]`` and ``probs[t]``, then samples ``tokens[t]``;
an ended tune's last step is its ``</s>``. Tunes are generated in batches of voices through
``generate_tunes``, so a recording holds exactly the tunes ``run.py generate`` gives for the same
model, seed and settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from instrument.model import vocab
from instrument.errors import UsageError
from instrument.model.generate import generate_tunes
from instrument.model.network import FolkRNN
from instrument.model.controls import Ablation, Controls
from instrument.model.stepper import Stepper
from instrument.music.tunes import Tune

FORMAT = "folk-instrument-recording"
VERSION = 1
STATES = ("h", "c")


@dataclass
class ActivationRecording:
    """Tunes and the network's activity at every step of them (see the module docstring)."""

    tokens: np.ndarray
    offsets: np.ndarray
    h: np.ndarray
    c: np.ndarray
    probs: np.ndarray
    meters: list[str]
    modes: list[str]
    ended: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tunes(self) -> int:
        return len(self.offsets) - 1

    @property
    def layers(self) -> int:
        return self.h.shape[0]

    @property
    def hidden(self) -> int:
        return self.h.shape[2]

    @property
    def steps(self) -> int:
        return len(self.tokens)

    def span(self, tune: int) -> slice:
        if not 0 <= tune < self.n_tunes:
            raise UsageError(f"tune {tune} out of range: the recording holds tunes 0..{self.n_tunes - 1}")
        return slice(int(self.offsets[tune]), int(self.offsets[tune + 1]))

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def state(self, name: str) -> np.ndarray:
        if name not in STATES:
            raise UsageError(f"state must be one of {STATES}, not {name!r}")
        return self.h if name == "h" else self.c

    def sequence(self, tune: int, layer: int, state: str = "h") -> np.ndarray:
        """(steps, hidden) float32 of one tune on one layer (``layer`` 1-based)."""
        if not 1 <= layer <= self.layers:
            raise UsageError(f"layer {layer} out of range: the model has layers 1..{self.layers}")
        return self.state(state)[layer - 1, self.span(tune)].astype(np.float32)

    def tune_tokens(self, tune: int) -> list[str]:
        return [vocab.TOKENS[int(t)] for t in self.tokens[self.span(tune)]]

    def tune(self, i: int) -> Tune:
        body = [t for t in self.tune_tokens(i) if t != vocab.END]
        return Tune(self.meters[i], self.modes[i], body, ended=bool(self.ended[i]))

    def tunes(self) -> list[Tune]:
        return [self.tune(i) for i in range(self.n_tunes)]

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")  # what np.savez would do anyway, made explicit
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(
            tmp,
            format=np.array(FORMAT), version=np.array(VERSION), meta=np.array(json.dumps(self.meta, default=str)),
            tokens=self.tokens, offsets=self.offsets, h=self.h, c=self.c, probs=self.probs,
            meters=np.array(self.meters, dtype=str), modes=np.array(self.modes, dtype=str), ended=self.ended,
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ActivationRecording":
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"recording {str(path)!r} not found; make one with 'run.py analyze record --out FILE.npz'")
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != FORMAT:
                    raise ValueError("format")
                return cls(
                    tokens=z["tokens"], offsets=z["offsets"], h=z["h"], c=z["c"], probs=z["probs"],
                    meters=[str(m) for m in z["meters"]], modes=[str(m) for m in z["modes"]],
                    ended=z["ended"].astype(bool), meta=json.loads(str(z["meta"])),
                )
        except (OSError, KeyError, ValueError) as error:
            raise UsageError(f"{path}: not a recording from 'run.py analyze record' ({type(error).__name__})") from None


class _Recorder:
    """Collects every body step from ``generate_tunes``' hooks, then orders the steps by tune."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self._steps: list[tuple] = []

    def on_step(self, stepper: Stepper, tokens: np.ndarray, tunes: np.ndarray) -> None:
        idx = np.flatnonzero(tunes >= 0)
        r = stepper.readout
        rows = torch.as_tensor(idx)
        h = torch.stack([x[rows] for x in r.h]).numpy().astype(self.dtype)
        c = torch.stack([x[rows] for x in r.c]).numpy().astype(self.dtype)
        probs = torch.softmax(r.logits[rows], dim=-1).numpy().astype(np.float32)
        self._steps.append((tunes[idx], tokens[idx].astype(np.int16), h, c, probs))

    def arrays(self, count: int, layers: int, hidden: int) -> dict[str, np.ndarray]:
        """Every step, tune after tune (a stable sort keeps each tune's steps in time order)."""
        if not self._steps:
            empty = np.zeros((layers, 0, hidden), dtype=self.dtype)
            return {"tokens": np.zeros(0, np.int16), "h": empty, "c": empty.copy(),
                    "probs": np.zeros((0, vocab.SIZE), np.float32), "lengths": np.zeros(count, np.int64)}
        tune = np.concatenate([s[0] for s in self._steps])
        order = np.argsort(tune, kind="stable")
        return {
            "tokens": np.concatenate([s[1] for s in self._steps])[order],
            "h": np.concatenate([s[2] for s in self._steps], axis=1)[:, order],
            "c": np.concatenate([s[3] for s in self._steps], axis=1)[:, order],
            "probs": np.concatenate([s[4] for s in self._steps])[order],
            "lengths": np.bincount(tune, minlength=count),
        }


def record(
    model: FolkRNN,
    n: int,
    seed: int | None = None,
    meter: str | None = None,
    mode: str | None = None,
    temperature: float = 1.0,
    max_tokens: int = 1000,
    batch: int = 64,
    ablation: Mapping[int, Sequence[int]] | None = None,
    ablation_mode: str = "output",
    dtype: str = "float16",
    model_name: str = "",
) -> ActivationRecording:
    """Generate ``n`` tunes and record every body step (see the module docstring).

    ``ablation`` maps 1-based layers to units cut during generation (empty/None: the plain model).
    ``dtype`` of the stored h and c: float16 (half the size; h is in [-1, 1]) or float32.
    """
    if n < 1:
        raise UsageError("record at least one tune (-n 1 or more)")
    if dtype not in ("float16", "float32"):
        raise UsageError(f"dtype must be float16 or float32, not {dtype!r}")
    cuts = {int(layer) - 1: sorted(int(u) for u in units) for layer, units in (ablation or {}).items() if len(units)}
    recorder = _Recorder(np.dtype(dtype))
    tunes = generate_tunes(
        model, n, meter, mode, (), temperature, seed, max_tokens, batch,
        controls=Controls(ablation=Ablation(cuts, ablation_mode)), on_step=recorder.on_step,
    )
    cfg = model.config
    steps = recorder.arrays(len(tunes), cfg.layers, cfg.hidden)
    offsets = np.concatenate([[0], np.cumsum(steps["lengths"])]).astype(np.int64)
    meta = {
        "model": model_name, "seed": seed, "n": n, "temperature": temperature, "meter": meter, "mode": mode,
        "max_tokens": max_tokens, "batch": batch, "layers": cfg.layers, "hidden": cfg.hidden, "dtype": dtype,
        "ablation": {str(k + 1): v for k, v in cuts.items()}, "ablation_mode": ablation_mode,
    }
    return ActivationRecording(
        tokens=steps["tokens"],
        offsets=offsets,
        h=steps["h"],
        c=steps["c"],
        probs=steps["probs"],
        meters=[t.meter for t in tunes],
        modes=[t.mode for t in tunes],
        ended=np.array([t.ended for t in tunes], dtype=bool),
        meta=meta,
    )
