"""OSC as a sender writes it: messages and bundles (tests and bench/soak.py)."""

from __future__ import annotations

import struct

from pythonosc.osc_message_builder import OscMessageBuilder


def osc_message(address: str, *args) -> bytes:
    """One OSC message as a datagram; each argument typed as python-osc infers it."""
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def bundle(*messages: bytes) -> bytes:
    """An OSC bundle (time tag 'immediately') holding ``messages``."""
    return b"#bundle\x00" + bytes(7) + b"\x01" + b"".join(struct.pack(">i", len(m)) + m for m in messages)
