"""Tunes as token sequences: the folk-rnn data format and ABC text for other tools.

The data format (as in folk-rnn's own files) is ``M:<meter>`` and ``K:<mode>`` lines, then
the body tokens separated by spaces, with a blank line between tunes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from instrument.model import vocab
from instrument.errors import UsageError
from instrument.model.vocab import TokenClass

BAR_TOKENS = frozenset(vocab.tokens_of(TokenClass.BAR))
ABC_ACCIDENTALS = "%%propagate-accidentals octave"  # abc2midi: accidentals hold per octave


@dataclass
class Tune:
    """One tune: its meter (``'4/4'``), mode (``'dor'``) and body tokens (no header, no ``</s>``)."""

    meter: str
    mode: str
    body: list[str] = field(default_factory=list)
    ended: bool = True

    @property
    def header(self) -> list[str]:
        return [vocab.meter_token(self.meter), vocab.mode_token(self.mode)]

    def tokens(self) -> list[str]:
        """The whole sequence the model sees: ``<s>``, header, body and ``</s>`` when ended."""
        return [vocab.START, *self.header, *self.body] + ([vocab.END] if self.ended else [])

    def to_text(self) -> str:
        """The tune in the data format (no trailing blank line)."""
        return "\n".join([*self.header, " ".join(self.body)])

    def to_abc(self, number: int = 1, title: str | None = None) -> str:
        """Playable ABC: ``X:``, ``T:``, ``M:``, ``L:1/8``, ``K:`` headers and the body.

        The ``%%propagate-accidentals octave`` line makes abc2midi hold an accidental only in its own
        octave, as the instrument plays it (docs/design.md §2); abc2midi's default holds it in every
        octave. It sits inside the tune because abc2midi resets it at every ``X:``.
        """
        lines = [f"X:{number}"]
        if title:
            lines.append(f"T:{title}")
        lines += [ABC_ACCIDENTALS, f"M:{self.meter}", "L:1/8", f"K:C{self.mode}", abc_body(self.body)]
        return "\n".join(lines) + "\n"


def abc_body(body: list[str]) -> str:
    """Body tokens as ABC: joined without spaces, bar tokens set apart by spaces."""
    parts: list[str] = []
    for token in body:
        if token in BAR_TOKENS:
            parts.append(f" {token} ")
        else:
            parts.append(token)
    return "".join(parts).strip()


def parse_tune(text: str, where: str = "tune") -> Tune:
    """Read one tune in the data format; meter and mode may sit on their own lines or inline.

    Raises ``UsageError`` naming the tune and the first token that is wrong.
    """
    tokens = text.split()
    if tokens and tokens[0] == vocab.START:
        tokens = tokens[1:]
    ended = False
    if tokens and tokens[-1] == vocab.END:
        tokens, ended = tokens[:-1], True
    if len(tokens) < 2 or not tokens[0].startswith("M:") or not tokens[1].startswith("K:"):
        raise UsageError(f"{where}: a tune starts with a meter and a mode line, such as 'M:4/4' and 'K:Cmaj'")
    for token in tokens:
        if token not in vocab.INDEX:
            raise UsageError(f"{where}: unknown token {token!r}; nearest valid: {', '.join(vocab.nearest(token))}")
    meter, mode = tokens[0], tokens[1]
    if vocab.TOKEN_CLASS[vocab.INDEX[meter]] is not TokenClass.METER:
        raise UsageError(f"{where}: unknown meter {meter!r}; valid: {', '.join('M:' + m for m in vocab.METERS)}")
    if vocab.TOKEN_CLASS[vocab.INDEX[mode]] is not TokenClass.MODE:
        raise UsageError(f"{where}: unknown mode {mode!r}; valid: {', '.join('K:C' + m for m in vocab.MODES)}")
    body = tokens[2:]
    for token in body:
        cls = vocab.TOKEN_CLASS[vocab.INDEX[token]]
        if cls in (TokenClass.METER, TokenClass.MODE, TokenClass.START, TokenClass.END):
            raise UsageError(f"{where}: {token!r} can only stand at the start or end of a tune")
    return Tune(vocab.meter_of(meter), vocab.mode_of(mode), body, ended=ended)


def parse_tunes(text: str, source: str = "input") -> list[Tune]:
    """Read every tune of a text in the data format (tunes separated by blank lines)."""
    tunes = []
    chunks = [c for c in text.replace("\r\n", "\n").split("\n\n") if c.strip()]
    for number, chunk in enumerate(chunks, 1):
        tunes.append(parse_tune(chunk, where=f"{source}: tune {number}"))
    if not tunes:
        raise UsageError(f"{source}: no tunes found; expected 'M:..' and 'K:..' lines then body tokens")
    return tunes


def format_tunes(tunes: list[Tune]) -> str:
    """Tunes in the data format, a blank line between them."""
    return "".join(t.to_text() + "\n\n" for t in tunes)
