"""Tunes as token sequences: the folk-rnn data format and ABC text for other tools.

The data format (as in folk-rnn's own files) is ``M:<meter>`` and ``K:<mode>`` lines, then
the body tokens separated by spaces, with a blank line between tunes.

ABC is written here and only here (``AbcWriter``), from what the note rules played
(``NoteStream.spelled``), so that abc2midi, abcjs and music21 read the notes the instrument played.
Tokens cannot simply be joined: ``A /4 2<`` would read as ``A/42<``, a length of /42.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from instrument.model import vocab
from instrument.errors import UsageError
from instrument.model.vocab import TokenClass
from instrument.music.notes import ABC_LENGTH, NoteStream, is_abc_length

BAR_TOKENS = frozenset(vocab.tokens_of(TokenClass.BAR))
ABC_ACCIDENTALS = "%%propagate-accidentals octave"  # abc2midi: accidentals hold per octave


@dataclass
class Tune:
    """One tune: its meter (``'4/4'``), mode (``'dor'``) and body tokens (no header, no ``</s>``)."""

    meter: str
    mode: str
    body: list[str] = field(default_factory=list)
    ended: bool = True
    heard: tuple[tuple[int, int], ...] = ()  # (first, end) body indices a musician played (live/listen.py)

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
        body = abc_body(self.meter, self.mode, self.body) if not self.heard else _marked_body(self)
        lines += [ABC_ACCIDENTALS, f"M:{self.meter}", "L:1/8", f"K:C{self.mode}", body]
        return "\n".join(lines) + "\n"


class AbcWriter:
    """A tune's body as ABC, one piece per token, handed out as the tokens come (the live page draws
    the tune as it is written): each piece once the note rules know what its note is
    (``NoteStream.spelled``), so the pieces of a note come when it is certain, in order. Bar tokens
    are set apart by spaces, everything else joined: the text never runs two tokens into one."""

    def __init__(self, meter: str, mode: str):
        self._stream = NoteStream(meter, mode, repeats=False)
        self._tokens: list[str] = []
        self.given = 0  # pieces handed out so far (one per token, in order)

    @property
    def pushed(self) -> int:
        """Tokens taken so far."""
        return len(self._tokens)

    def pieces(self, token: str) -> list[str]:
        """Take the next token; return the pieces that became certain (none, or several)."""
        self._tokens.append(token)
        self._stream.push(token)
        return self._laid_out(self._stream.spelled)

    def end(self) -> list[str]:
        """The tune ends: the pieces still open."""
        self._stream.close()
        return self._laid_out(self._stream.spelled)

    def _laid_out(self, texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            token = self._tokens[self.given]
            out.append(f" {text} " if token in BAR_TOKENS else text)
            self.given += 1
        return out


def abc_pieces(meter: str, mode: str, body: list[str]) -> list[str]:
    """Each body token's piece of ABC (``AbcWriter``)."""
    writer = AbcWriter(meter, mode)
    pieces = [piece for token in body for piece in writer.pieces(token)]
    return pieces + writer.end()


NOTE_START = tuple("^_=ABCDEFGabcdefgz[(")  # how a piece that sounds (a note, rest, chord, tuplet) begins


def _marked_body(tune: Tune) -> str:
    """The body with who played what: "^musician" above the first note of each stretch a musician
    played, "^instrument" above the first note after it (an annotation, which every reader draws or
    skips)."""
    pieces = abc_pieces(tune.meter, tune.mode, tune.body)
    marks: dict[int, str] = {}
    for first, end in tune.heard:
        marks[first], marks[end] = "musician", "instrument"
    out, owed = [], None
    for index, piece in enumerate(pieces):
        owed = marks.get(index, owed)
        if owed and piece.lstrip().startswith(NOTE_START):
            piece = f'"^{owed}"{piece.lstrip()}' if not piece.startswith(" ") else f' "^{owed}"{piece.lstrip()}'
            owed = None
        out.append(piece)
    return "".join(out).strip()


def abc_body(meter: str, mode: str, body: list[str]) -> str:
    """Body tokens as ABC: the pieces joined, bar tokens set apart by spaces."""
    return "".join(abc_pieces(meter, mode, body)).strip()


def abc_body_tokens(text: str) -> list[str]:
    """The body tokens of ABC that ``abc_body`` wrote (its inverse, up to spellings that sound the
    same: ``B3/2A/2`` for ``B > A``, and tokens that sound nothing, which it leaves out). A note
    length is read whole, as one duration (``9/4`` is a length no token spells, which the note rules
    take); ``(5:2:5`` is ``(5``; elsewhere the longest token of the vocabulary at each place.
    Raises UsageError naming the first text that is no token."""
    tokens: list[str] = []
    for word in text.split():
        i = 0
        while i < len(word):
            found = _TUPLET_SPELLED.match(word, i) or ABC_LENGTH.match(word, i)
            if found:
                if found.re is ABC_LENGTH and not is_abc_length(found.group()):
                    raise UsageError(f"{found.group()!r} is not a note length: it is 0 or divides by 0")
                tokens.append(found.group(1) if found.re is _TUPLET_SPELLED else found.group())
                i = found.end()
                continue
            for size in range(min(_LONGEST, len(word) - i), 0, -1):
                if word[i:i + size] in _BODY_TOKENS:
                    tokens.append(word[i:i + size])
                    i += size
                    break
            else:
                raise UsageError(f"{word[i:i + 8]!r} is not ABC that folk-instrument writes (no token of the vocabulary)")
    return tokens


_TUPLET_SPELLED = re.compile(r"(\(\d)(?::\d*:\d*)?")  # (3, or (5:2:5 with its q and r written out
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
