"""The models the package ships, by name, without loading torch (the parameter registry and
``patch check`` need the names; only playing needs the weights).

``session`` is every command's default: the dance-tune idiom of folk-rnn's own data (two
repeated parts, dorian and mixolydian tunes among the major and minor). ``songs`` learned the
whole corpus, the Essen songs included. Their model cards (``shipped/<name>.md``) say how each
was made.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("shipped")
SHIPPED: tuple[str, ...] = ("session", "songs")
DEFAULT_NAME = SHIPPED[0]


def shipped(name: str) -> Path:
    """The checkpoint file of a shipped model."""
    return SHIPPED_DIR / f"{name}.pt"


def shipped_name(spec: str | Path | None) -> str | None:
    """The shipped model ``--model`` names (none given: the default), or None where it names a path.

    A name wins over a file of the same name in the working directory; write ``./songs`` for that.
    """
    if spec is None:
        return DEFAULT_NAME
    return str(spec) if str(spec) in SHIPPED else None


def name_of(spec: str | Path | None) -> str:
    """The name a model is known by in a performance: a shipped model's name, else its file's stem."""
    name = shipped_name(spec)
    if name is not None:
        return name
    stem = Path(spec).stem
    return f"{stem} (file)" if stem in SHIPPED else stem


def choices(spec: str | Path | None) -> dict[str, str]:
    """Every model a performance may switch between, by name: the shipped ones that are
    installed, and the one ``spec`` names by path."""
    out = {name: str(shipped(name)) for name in SHIPPED if shipped(name).is_file()}
    if shipped_name(spec) is None:
        out[name_of(spec)] = str(spec)
    return out

MODEL_HELP = "session (dance tunes, the default), songs (the whole corpus) or a checkpoint's path"
