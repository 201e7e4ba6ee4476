"""OSC as a sender writes it: messages and bundles, and an instrument's ``/state`` asked (tests,
bench/soak.py, bench/audio.py)."""

from __future__ import annotations

import json
import socket
import struct
import time

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


def ask_state(sock: socket.socket, port: int, host: str = "127.0.0.1", timeout: float | None = None) -> dict | None:
    """Ask an instrument's ``/state`` from ``sock`` (a UDP socket) and decode its one reply (an OSC
    message /state with a JSON string); None when none came within ``timeout`` (None: the socket's
    own timeout). A late reply to an earlier ask is dropped first, so it never passes for this one's."""
    kept = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65536)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(kept if timeout is None else timeout)
    sock.sendto(osc_message("/state"), (host, port))
    try:
        data, _ = sock.recvfrom(65536)
    except socket.timeout:
        return None
    assert data.startswith(b"/state\x00")
    text = data[data.index(b",s\x00\x00") + 4:].split(b"\x00")[0]
    return json.loads(text)


def wait_until_playing(port: int, timeout: float = 90.0, alive=lambda: True) -> dict:
    """The ``/state`` of an instrument on ``port`` once its performance has begun (its status
    names a tune); AssertionError after ``timeout`` s or once ``alive()`` is False."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        while True:
            state = ask_state(sock, port)
            if state is not None and state.get("status", {}).get("tune", 0) >= 1:
                return state
            assert alive(), "the instrument ended before it played"
            assert time.monotonic() < deadline, f"the instrument did not start playing in {timeout:g} s"
            time.sleep(0.1)
