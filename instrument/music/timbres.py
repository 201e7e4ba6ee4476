"""The instruments the built-in sound can be, by their folk names.

Each is a General MIDI program (what FluidSynth plays from a GM SoundFont) and whether the
instrument sustains (bowed, blown, squeezed) or dies away (plucked, struck): the numpy synth,
which has one timbre of each kind (bow, pluck), plays the nearest. GM has no concertina, uilleann pipes or
tin whistle of its own: each takes the nearest GM program (tango accordion, bagpipe, piccolo:
GM's own "Whistle" is mistuned in small GM SoundFonts such as TimGM6mb, and a D whistle plays in
the piccolo's register).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GmTimbre:
    """One instrument of the built-in sound."""

    name: str
    program: int  # General MIDI program, 0-based (0 = acoustic grand piano)
    sustains: bool  # bowed/blown/squeezed (True) or plucked/struck (False)
    gm_name: str  # the GM program's own name, for the list


GM_TIMBRES: dict[str, GmTimbre] = {t.name: t for t in (
    GmTimbre("fiddle", 110, True, "Fiddle"),
    GmTimbre("violin", 40, True, "Violin"),
    GmTimbre("cello", 42, True, "Cello"),
    GmTimbre("flute", 73, True, "Flute"),
    GmTimbre("tin-whistle", 72, True, "Piccolo"),
    GmTimbre("recorder", 74, True, "Recorder"),
    GmTimbre("uilleann-pipes", 109, True, "Bag pipe"),
    GmTimbre("bagpipe", 109, True, "Bag pipe"),
    GmTimbre("accordion", 21, True, "Accordion"),
    GmTimbre("concertina", 23, True, "Tango Accordion"),
    GmTimbre("harmonica", 22, True, "Harmonica"),
    GmTimbre("harp", 46, False, "Orchestral Harp"),
    GmTimbre("banjo", 105, False, "Banjo"),
    GmTimbre("guitar", 25, False, "Acoustic Guitar (steel)"),
    GmTimbre("nylon-guitar", 24, False, "Acoustic Guitar (nylon)"),
    GmTimbre("dulcimer", 15, False, "Dulcimer"),
    GmTimbre("piano", 0, False, "Acoustic Grand Piano"),
    GmTimbre("harpsichord", 6, False, "Harpsichord"),
)}
DEFAULT = "harp"  # plucked, as the numpy synth's first timbre always was
ALIASES = {"pluck": "harp", "bow": "fiddle", "pipes": "uilleann-pipes", "whistle": "tin-whistle",
           "penny-whistle": "tin-whistle", "squeezebox": "accordion"}


def find_timbre(name: str) -> GmTimbre:
    """A timbre by name, spelled as a user might ("Tin Whistle", "uilleann_pipes", "bow").
    Raises ValueError naming the choices."""
    key = "-".join(name.strip().lower().replace("_", " ").replace("-", " ").split())
    key = ALIASES.get(key, key)
    try:
        return GM_TIMBRES[key]
    except KeyError:
        raise ValueError(f"unknown timbre {name!r}; choose one of {', '.join(GM_TIMBRES)} ('--timbre list' shows them)") from None


def timbre_table() -> str:
    """The list ``--timbre list`` prints: name, GM program (1-based, as synths show it), kind."""
    lines = [f"{'timbre':<16}{'GM program':<32}sound"]
    for t in GM_TIMBRES.values():
        lines.append(f"{t.name:<16}{t.program + 1:>3} {t.gm_name:<28}{'sustains' if t.sustains else 'plucked/struck'}")
    lines.append(f"also: {', '.join(f'{a} = {b}' for a, b in ALIASES.items())}")
    return "\n".join(lines)
