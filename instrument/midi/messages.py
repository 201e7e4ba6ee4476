"""MIDI messages: the status bytes and controller numbers the instrument sends and reads, and
the check every received message passes before anything acts on it.

Channel messages are a status byte (kind in the high nibble, channel - 1 in the low one) and one
or two data bytes of 0..127; system real-time messages (clock, start, stop) are one byte. A
message that breaks this (a data byte over 127, a missing one) is refused whole: one bad message
must never reach the parameters (a key "held" at note 200 would refuse every later key).
"""

from __future__ import annotations

from typing import Sequence

# channel messages (status byte | channel - 1)
NOTE_OFF, NOTE_ON, POLY_PRESSURE, CONTROL, PROGRAM, CHANNEL_PRESSURE, BEND = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0
# system real-time messages
CLOCK_TICK, START, CONTINUE, STOP, ACTIVE_SENSING, RESET = 0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF
SYSEX = 0xF0
# controller numbers (channel mode messages)
ALL_SOUND_OFF, ALL_NOTES_OFF = 120, 123

CLOCKS_PER_QUARTER = 24  # MIDI clock: Timing Clock messages per quarter note (the MIDI file's resolution is another thing)

DATA_BYTES = {NOTE_OFF: 2, NOTE_ON: 2, POLY_PRESSURE: 2, CONTROL: 2, PROGRAM: 1, CHANNEL_PRESSURE: 1, BEND: 2}


def kind(status: int) -> int:
    """A channel message's kind (0x80..0xE0) or a system message's whole status byte."""
    return status if status >= 0xF0 else status & 0xF0


def problem(message: Sequence[int]) -> str | None:
    """Why a received message cannot be acted on, or None when it is well formed.

    Channel messages need their exact count of data bytes, each 0..127; system messages other than
    sysex are their status byte alone, or with data bytes of 0..127 (song position, ...)."""
    if not message:
        return "an empty message"
    status = message[0]
    if not isinstance(status, int) or not 0x80 <= status <= 0xFF:
        return f"status byte {status!r} is not 0x80..0xFF"
    data = message[1:]
    if status == SYSEX:
        return None if message[-1] == 0xF7 else "a sysex message without its end byte"
    if any(not isinstance(b, int) or not 0 <= b <= 127 for b in data):
        return f"a data byte outside 0..127 in {_hex(message)}"
    wanted = DATA_BYTES.get(kind(status))
    if wanted is not None and len(data) != wanted:
        return f"{_hex(message)} has {len(data)} data bytes, not {wanted}"
    return None


def _hex(message: Sequence[int]) -> str:
    shown = " ".join(f"{b:02X}" if isinstance(b, int) else repr(b) for b in list(message)[:8])
    return f"[{shown}{' ...' if len(message) > 8 else ''}]"
