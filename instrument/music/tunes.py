"""Tunes as token sequences: the folk-rnn data format and ABC text for other tools.

The data format (as in folk-rnn's own files) is ``M:<meter>`` and ``K:<mode>`` lines, then
the body tokens separated by spaces, with a blank line between tunes.

ABC is written here and only here (``AbcWriter``): each token as the note rules took it
(``NoteStream.spelling``), so that abc2midi, abcjs and music21 read the notes the instrument
played. Tokens cannot simply be joined: ``A /4 2<`` would read as ``A/42<``, a length of /42.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from instrument.model import vocab
from instrument.errors import UsageError
from instrument.model.vocab import TokenClass
from instrument.music.notes import NoteStream

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
        lines += [ABC_ACCIDENTALS, f"M:{self.meter}", "L:1/8", f"K:C{self.mode}", abc_body(self.meter, self.mode, self.body)]
        return "\n".join(lines) + "\n"


class AbcWriter:
    """A tune's body as ABC, one piece per token as the tokens come (the live page draws the tune
    as it is written). A piece is the token as the note rules took it: itself, nothing for a token
    they ignore (a duration after a duration, a stray ``]``), the shorter length the bound put in
    its place, with a ``]`` first where a bar line closes a chord; bar tokens set apart by spaces,
    everything else joined. So the text never runs two tokens into one (``A/4`` then ``2<``)."""

    def __init__(self, meter: str, mode: str):
        self._stream = NoteStream(meter, mode, repeats=False)

    def piece(self, token: str) -> str:
        self._stream.push(token)
        before, text = self._stream.spelling
        return f"{before} {text} " if token in BAR_TOKENS else before + text

    def end(self) -> str:
        """What the end of the tune adds: a ``]`` for a chord left open."""
        self._stream.close()
        return self._stream.spelling[0]


def abc_pieces(meter: str, mode: str, body: list[str]) -> list[str]:
    """Each body token's piece of ABC (``AbcWriter``); the last one carries the tune's end."""
    writer = AbcWriter(meter, mode)
    pieces = [writer.piece(token) for token in body]
    if pieces:
        pieces[-1] += writer.end()
    return pieces


def abc_body(meter: str, mode: str, body: list[str]) -> str:
    """Body tokens as ABC: the pieces joined, bar tokens set apart by spaces."""
    return "".join(abc_pieces(meter, mode, body)).strip()


def abc_body_tokens(text: str) -> list[str]:
    """The body tokens of ABC that ``abc_body`` wrote (its inverse, up to spellings that sound the
    same, such as ``/2`` ``>`` and ``/2>``, and tokens that sound nothing, which it leaves out):
    the longest token of the vocabulary at each place.
    Raises UsageError naming the first text that is no token."""
    tokens: list[str] = []
    for word in text.split():
        i = 0
        while i < len(word):
            for size in range(min(_LONGEST, len(word) - i), 0, -1):
                if word[i:i + size] in _BODY_TOKENS:
                    tokens.append(word[i:i + size])
                    i += size
                    break
            else:
                raise UsageError(f"{word[i:i + 8]!r} is not ABC that folk-instrument writes (no token of the vocabulary)")
    return tokens


_BODY_TOKENS = frozenset(t for t, c in zip(vocab.TOKENS, vocab.TOKEN_CLASS)
                         if c not in (TokenClass.METER, TokenClass.MODE, TokenClass.START, TokenClass.END))
_LONGEST = max(map(len, _BODY_TOKENS))


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
