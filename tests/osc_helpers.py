"""OSC as a sender writes it: messages, bundles, a free UDP port (tests and bench/soak.py)."""

from __future__ import annotations

import socket
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


def free_port() -> int:
    """A UDP port on loopback that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
