"""Which key a musician plays in, and the transposition that brings it into C as folk-rnn writes.

Every folk-rnn tune is in C (docs/design.md §2): a tune heard in D dorian is written ``K:Cdor`` two
semitones down. Kept apart from the transcriber because it answers a different question (what is
the tonic and the mode of these pitches?) that a live tool may ask on its own.

Key finding is Krumhansl-style: the pitch classes heard, weighted by how long they sound, are
correlated with a profile of each key, and the best fit wins. The major and minor profiles are
Krumhansl and Kessler's probe-tone ratings; the two folk modes between them are those profiles with
the one degree that differs changed (mixolydian: major with its seventh lowered; dorian: minor with
its sixth raised), so all four rank tonic, fifth and third above the other degrees of their scale.
A scale-fit alone cannot tell C major from A minor (one scale); the tonic's weight in the profile
is what does. The profiles alone, though, let a tune that seldom plays its third drift to the mode
with the other third: so each key also pays for the share of the music outside its scale
(``OUTSIDE_COST`` times it), which settles the mode once the tonic is clear.
"""

from __future__ import annotations

from typing import Iterable

from instrument.model import vocab

# Krumhansl & Kessler (1982) probe-tone profiles, degree 0 the tonic.
_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


def _swap(profile: tuple[float, ...], a: int, b: int) -> tuple[float, ...]:
    out = list(profile)
    out[a], out[b] = out[b], out[a]
    return tuple(out)


PROFILES: dict[str, tuple[float, ...]] = {
    "maj": _MAJOR,
    "mix": _swap(_MAJOR, 10, 11),  # the lowered seventh takes the leading note's weight
    "dor": _swap(_MINOR, 8, 9),  # the raised sixth takes the minor sixth's weight
    "min": _MINOR,
}
SCALES: dict[str, frozenset[int]] = {
    "maj": frozenset({0, 2, 4, 5, 7, 9, 11}),
    "mix": frozenset({0, 2, 4, 5, 7, 9, 10}),
    "dor": frozenset({0, 2, 3, 5, 7, 9, 10}),
    "min": frozenset({0, 2, 3, 5, 7, 8, 10}),
}
OUTSIDE_COST = 3.0  # per share of the music (by length) outside a key's scale, against its correlation
# The range the model writes in: most of its notes lie from G, to c' (docs/design.md §2); tokens
# reach from C, (48) to b' (95), and every pitch from 48 to 91 can be spelled in every mode.
WRITTEN_RANGE = (55, 84)
SPELLABLE_RANGE = (48, 91)


def _correlation(xs: list[float], ys: tuple[float, ...]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else 0.0


def key_scores(notes: Iterable[tuple[int, float]]) -> dict[tuple[int, str], float]:
    """The fit of every key (tonic pitch class 0..11, mode) to ``notes`` (MIDI pitch, weight)."""
    histogram = [0.0] * 12
    for pitch, weight in notes:
        histogram[pitch % 12] += max(weight, 0.0)
    total = sum(histogram) or 1.0
    scores = {}
    for tonic in range(12):
        rotated = histogram[tonic:] + histogram[:tonic]  # degree 0 = this tonic
        for mode in vocab.MODES:
            outside = sum(w for degree, w in enumerate(rotated) if degree not in SCALES[mode]) / total
            scores[(tonic, mode)] = _correlation(rotated, PROFILES[mode]) - OUTSIDE_COST * outside
    return scores


def find_key(notes: Iterable[tuple[int, float]]) -> tuple[int, str]:
    """The best-fitting key (tonic pitch class, mode) of ``notes`` (MIDI pitch, weight: how long
    it sounds); C major when nothing was heard."""
    notes = list(notes)
    if not any(w > 0 for _, w in notes):
        return 0, "maj"
    scores = key_scores(notes)
    best = max(scores.values())
    # ties go to the first in order: C before C#, maj before the other modes
    return next(key for key, score in scores.items() if score == best)


def nearest_shift(tonic: int) -> int:
    """The transposition (semitones, -6..5) that takes ``tonic`` to the nearest C."""
    return (-tonic + 6) % 12 - 6


def transposition(tonic: int, pitches: Iterable[tuple[int, float]]) -> int:
    """Semitones to add to every pitch heard in a key on ``tonic`` to write it in C.

    The nearest C (``nearest_shift``) unless an octave more or less keeps the notes clearly nearer
    the range the model writes: the penalty is how far the notes lie outside ``WRITTEN_RANGE`` on
    average (in semitones, weighted by length), far more for notes no token can spell, and an octave
    away from the nearest C costs two semitones of it, so a tune played in C stays where it is.
    """
    notes = [(p, max(w, 0.0)) for p, w in pitches]
    total = sum(w for _, w in notes) or 1.0
    low, high = WRITTEN_RANGE
    least, most = SPELLABLE_RANGE

    def penalty(shift: int) -> float:
        out = 0.0
        for pitch, weight in notes:
            p = pitch + shift
            out += weight * (max(0, low - p, p - high) + (12 if p < least or p > most else 0))
        return out / total

    base = nearest_shift(tonic)
    return min((base, base - 12, base + 12), key=lambda s: penalty(s) + (2.0 if s != base else 0.0))


TONICS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6, "G": 7, "G#": 8,
          "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}


def parse_key(text: str) -> tuple[int, str] | None:
    """A key as a performer names it (the parameter ``listen.key``): 'auto' (None: found from the
    notes) or a tonic and a mode, 'D dor', 'G', 'E min', 'Bb mix' (the mode defaults to maj).
    Raises ValueError naming what is wrong."""
    words = text.split()
    if words in ([], ["auto"]):
        return None
    tonic = words[0][:1].upper() + words[0][1:]
    mode = words[1].lower()[:3] if len(words) > 1 else "maj"
    if tonic not in TONICS or mode not in vocab.MODE_SIGNATURE or len(words) > 2:
        raise ValueError(f"a key is 'auto' or a tonic and a mode ({', '.join(vocab.MODES)}), e.g. 'D dor'")
    return TONICS[tonic], mode
