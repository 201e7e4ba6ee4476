"""Performer parameters -> the network's controls (stimulation, ablation, logit bias).

The registry speaks the performer's language (a scale lock, "more rests", an ablation depth
over an ordered unit set, the keys held on a keyboard); the stepper speaks tokens, units and
logits. This module is the one translation between them, used live and offline alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from instrument.model import vocab
from instrument.errors import UsageError
from instrument.live.params import SCALES
from instrument.model.controls import Ablation, Stimulation
from instrument.model.vocab import TokenClass

_PITCH_INDICES = np.flatnonzero(vocab.class_mask(TokenClass.PITCH))
_TUPLETS = vocab.class_mask(TokenClass.TUPLET)
_REST = vocab.INDEX["z"]
_END = vocab.INDEX[vocab.END]
_LONG = np.array([c is TokenClass.DURATION and vocab.duration_value(t) > 1 for t, c in zip(vocab.TOKENS, vocab.TOKEN_CLASS)])
_SHORT = np.array([c is TokenClass.DURATION and vocab.duration_value(t) < 1 for t, c in zip(vocab.TOKENS, vocab.TOKEN_CLASS)])


def token_pitch_class(token: str, mode: str) -> int:
    """The pitch class a pitch token sounds in a mode (its key signature applied; C = 0)."""
    acc, letter, octave = vocab.parse_pitch(token)
    shift = acc if acc is not None else vocab.MODE_SIGNATURE[mode].get(letter, 0)
    return (vocab.natural_midi(letter, octave) + shift) % 12


def pitch_class_table(mode: str) -> np.ndarray:
    """Pitch class of every pitch token in ``mode`` (-1 for other tokens)."""
    table = np.full(vocab.SIZE, -1)
    for i in _PITCH_INDICES:
        table[i] = token_pitch_class(vocab.TOKENS[i], mode)
    return table


def logit_bias(
    mode: str,
    scale: Sequence[int] = (),
    strength: float = 0.0,
    rests: float = 0.0,
    triplets: float = 0.0,
    long_notes: float = 0.0,
    short_notes: float = 0.0,
    end: float = 0.0,
) -> np.ndarray | None:
    """The bias vector for these settings, or None when it would be all zeros."""
    bias = np.zeros(vocab.SIZE)
    if scale and strength:
        pcs = pitch_class_table(mode)
        outside = (pcs >= 0) & ~np.isin(pcs, list(scale))
        bias[outside] -= strength
    bias[_REST] += rests
    bias[_TUPLETS] += triplets
    bias[_LONG] += long_notes
    bias[_SHORT] += short_notes
    bias[_END] += end
    return bias if bias.any() else None


def scale_pitch_classes(scale: str, custom: Sequence[int]) -> tuple[int, ...]:
    return tuple(custom) if scale == "custom" else SCALES[scale]


def midi_to_token(note: int) -> str:
    """A MIDI note as a pitch token (plainest spelling the vocabulary holds, octave folded into
    its range C, .. b'), for keyboard stimulation."""
    low, high = 48, 95
    while note < low:
        note += 12
    while note > high:
        note -= 12
    octave, pc = divmod(note - 60, 12)
    names = ["C", "^C", "D", "_E", "E", "F", "^F", "G", "^G", "A", "_B", "B"]
    name = names[pc]
    acc, letter = (name[0], name[1]) if len(name) == 2 else ("", name)
    if octave >= 1:
        letter = letter.lower() + "'" * (octave - 1)
    elif octave < 0:
        letter = letter + "," * (-octave)
    token = acc + letter
    if token in vocab.INDEX:
        return token
    # the other spelling (^C for _D); the vocabulary lacks a few high accidentals: an octave lower
    for alternative in _spellings(note):
        if alternative in vocab.INDEX:
            return alternative
    return midi_to_token(note - 12)


def _spellings(note: int) -> list[str]:
    """Every vocabulary-style spelling of a MIDI note: natural, sharp and flat names."""
    out = []
    for letter, semitone in zip("CDEFGAB", (0, 2, 4, 5, 7, 9, 11)):
        for acc, shift in (("", 0), ("^", 1), ("_", -1)):
            octave, rest = divmod(note - 60 - semitone - shift, 12)
            if rest:
                continue
            name = letter.lower() + "'" * (octave - 1) if octave >= 1 else letter + "," * (-octave)
            out.append(acc + name)
    return out


def stimulation(source: str, weight: float, token: str = "C", keys: Sequence[int] = ()) -> Stimulation:
    """The stepper's Stimulation for a source and weight (weight 0: plain one-hot input)."""
    if weight <= 0:
        return Stimulation()
    if source == "random-pitch-class":
        return Stimulation.seed_two_hot(weight)
    if source == "keys":
        if not keys:
            return Stimulation()
        tokens = [midi_to_token(k) for k in keys]
        share = weight / len(tokens)
        return Stimulation(sampled_weight=1.0 - weight, forced=tuple((vocab.INDEX[t], share) for t in tokens))
    return Stimulation.tokens([token], weight, sampled_weight=1.0 - weight)


def ablation(order: Sequence[int], depth: float, layer: int, mode: str, extra: Sequence[int] = ()) -> Ablation:
    """Cut the first ``depth`` fraction of ``order`` (plus ``extra``) on ``layer`` (1-based)."""
    count = int(round(depth * len(order)))
    units = sorted(set(order[:count]) | set(extra))
    return Ablation({layer - 1: units} if units else {}, mode)


class UnitOrders:
    """Ordered unit lists that an ablation depth sweeps, per layer.

    ``random`` is a fixed random permutation (seeded, so a performance is repeatable);
    ``periodic`` and other names come from ablation-set files written by ``run.py analyze
    spectra`` (JSON with ``layer`` 1-based and ``units`` in rank order), looked up beside the
    model as ``<model>.ablation/<name>-layer<L>.json`` or given as a path.
    """

    def __init__(self, hidden: int, model_path: str | None = None, seed: int = 0):
        self.hidden = hidden
        self.model_path = model_path
        self.seed = seed
        self._cache: dict[tuple[str, int], tuple[int, ...]] = {}

    def preload(self, layers: int) -> list[str]:
        """Read every installed set of every layer now (before the performance: the model
        thread and controllers never touch the disk); returns a warning per unreadable file."""
        problems = []
        for name in installed_sets(self.model_path):
            for layer in range(1, layers + 1):
                if set_path(model_set_dir(self.model_path), name, layer).is_file():
                    try:
                        self.get(name, layer)
                    except UsageError as error:
                        problems.append(str(error))
        return problems

    def get(self, name: str, layer: int) -> tuple[int, ...]:
        key = (name, layer)
        if key not in self._cache:
            self._cache[key] = self._load(name, layer)
        return self._cache[key]

    def cached(self, name: str, layer: int) -> tuple[int, ...] | None:
        """The order if it was loaded before (never touches the disk)."""
        return self._cache.get((name, layer))

    def _load(self, name: str, layer: int) -> tuple[int, ...]:
        if name == "random":
            rng = np.random.default_rng([self.seed, layer])
            return tuple(int(u) for u in rng.permutation(self.hidden))
        path = Path(name)
        if not path.suffix and self.model_path:
            path = set_path(model_set_dir(self.model_path), name, layer)
        if not path.is_file():
            raise UsageError(f"ablation set {name!r} not found (looked for {path}); run 'run.py analyze spectra' or use 'random'")
        if path.stat().st_size > MAX_SET_BYTES:
            raise UsageError(f"{path}: over {MAX_SET_BYTES >> 10} KiB, too big for an ablation-set file")
        try:
            data = json.loads(path.read_text())
            units = tuple(int(u) for u in data["units"])
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(f"{path}: not an ablation-set file ({error})") from None
        if any(not 0 <= u < self.hidden for u in units):
            raise UsageError(f"{path}: unit numbers outside 0..{self.hidden - 1} for this model")
        return units


MAX_SET_BYTES = 1 << 20  # a set of 4,096 units with its notes is under 64 KiB


def model_set_dir(model_path: str | Path) -> Path:
    """``<model path without suffix>.ablation``: where sets beside a model live."""
    return Path(model_path).with_suffix(".ablation")


def set_path(directory: str | Path, name: str, layer: int) -> Path:
    """The file of set ``name`` of ``layer`` in ``directory``: ``<name>-layer<L>.json``."""
    return Path(directory) / f"{name}-layer{layer}.json"


def installed_sets(model_path: str | None) -> tuple[str, ...]:
    """Names of the ablation sets installed beside a model (any layer), sorted."""
    if not model_path:
        return ()
    folder = model_set_dir(model_path)
    try:
        files = [p.name for p in folder.iterdir()]
    except OSError:
        return ()
    names = {f.rsplit("-layer", 1)[0] for f in files if f.endswith(".json") and "-layer" in f}
    return tuple(sorted(n for n in names if n and n != "random"))
