"""Written bars and their checks, counted the way abc2midi counts them.

Kept apart from the note rules because it answers a different question (does each bar hold what the
meter asks for?) and because matching abc2midi's bar counting takes rules of its own; see
``BarTally``. Lengths are exact, in eighth notes (the unit length); ``Bar`` shows them in beats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

QUARTERS_PER_EIGHTH = Fraction(1, 2)  # the unit length is an eighth note: half a quarter-note beat


def beats(eighths: Fraction) -> float:
    """Eighth notes to quarter-note beats, as the float the public API shows."""
    return float(eighths * QUARTERS_PER_EIGHTH)


@dataclass(frozen=True, slots=True)
class Bar:
    """One written bar.

    ``ok`` is true when the bar is full, when it is a pickup, or when it is a short closing bar: the
    last bar of a first ending (``|1 ... :|``) or the unfinished last bar of the tune, which the
    pickup completes when the music goes round again.
    """

    length: float  # quarter-note beats actually filled
    expected: float  # quarter-note beats the meter asks for
    ok: bool  # length == expected, or the bar is a pickup (or a short closing bar, see above)
    pickup: bool  # first bar of the tune or of a repeated section, shorter than the meter
    end_token: int = -1  # index in the body of the bar token that ended it (-1: the tune's end)


@dataclass
class BarRecord:
    """A bar while it is counted: what judging it needs beyond what ``Bar`` shows."""

    index: int
    start: Fraction  # written position, in eighths
    length: Fraction = Fraction(0)
    head: bool = False  # starts the tune or a ``|:`` section at a bar line (may be a pickup)
    checks: list[Fraction] = field(default_factory=list)  # lengths it must have when played again
    closing: bool = False  # a first ending's last bar or the tune's unfinished last bar
    end_token: int = -1


class BarTally:
    """Written bars and their checks, counted the way abc2midi counts them.

    A bar line ``|``, ``|1`` or ``|2`` ends every non-empty bar. A repeat sign ``|:`` or ``:|`` ends
    a bar only when it is full (or over-full) or is the tune's first bar: a repeat sign in mid-bar
    leaves the bar open, so ``.. c4 :| cG |`` is one bar of three beats. The last bar of a first
    ending is closed by its ``:|`` even when short. When a section goes round again, the part of
    its last bar before ``:|`` (the tail) and the part of its first bar after the section start
    must make one full bar: that is checked on the section's first bar, which is where abc2midi
    reports it. A pickup is a short first bar of the tune or of a ``|:`` section that passes that
    check. Two spec rules abc2midi does not share: an over-long first bar is an error (abc2midi never
    checks an unrepeated first bar), and a ``|:`` section after a full bar may start with a pickup
    (abc2midi allows that to the tune's first bar only).
    """

    def __init__(self, eighths: Fraction) -> None:
        self.eighths = eighths  # a full bar
        self.done: list[Bar] = []
        self.records: list[BarRecord] = []
        self.current = BarRecord(0, Fraction(0), head=True)

    def bar(self, record: BarRecord) -> Bar:
        """Judge a bar: full, a pickup, or a short closing bar (a first ending's or the tune's last)."""
        checks_ok = all(c == self.eighths for c in record.checks)
        short = record.length < self.eighths
        pickup = record.head and short and checks_ok
        ok = (record.length == self.eighths and checks_ok) or pickup or (record.closing and short and checks_ok)
        return Bar(beats(record.length), beats(self.eighths), ok, pickup, record.end_token)

    def close(self, position: Fraction, token: int, closing: bool = False) -> bool:
        """End the current bar (at body index ``token``) if it holds anything; the next starts at ``position``."""
        record = self.current
        if record.length == 0:
            return False
        record.closing, record.end_token = closing, token
        self.records.append(record)
        self.done.append(self.bar(record))
        self.current = BarRecord(record.index + 1, position)
        return True

    def add_check(self, index: int, length: Fraction) -> None:
        """Record that bar ``index`` must be ``length`` long when played again; re-judge it if closed."""
        if index < len(self.records):
            record = self.records[index]
            record.checks.append(length)
            self.done[index] = self.bar(record)
        else:
            self.current.checks.append(length)

    def length_of(self, index: int) -> Fraction:
        """Length so far of bar ``index``, closed or still open."""
        return self.records[index].length if index < len(self.records) else self.current.length
