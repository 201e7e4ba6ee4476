"""Choosing a MIDI API and a port, shared by the MIDI output and the MIDI inputs.

python-rtmidi is often compiled with several APIs (ALSA and JACK on Linux) of which only some
work on a given machine: ALSA needs the kernel's sequencer (``/dev/snd/seq``), JACK a running
server. Failing attempts make ALSA and libjack print to the C stderr, so probing is done with
it silenced and the user gets one line from us instead.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, TypeVar

import rtmidi

from instrument.errors import UsageError

log = logging.getLogger(__name__)

PRODUCT = "folk-instrument"
ALSA, JACK = rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK
# Our names for the APIs (rtmidi's own: 'core', 'alsa', 'jack', 'winmm', 'web', 'dummy').
API_NAMES = {"alsa": ALSA, "jack": JACK, "coremidi": rtmidi.API_MACOSX_CORE, "winmm": rtmidi.API_WINDOWS_MM, "web": rtmidi.API_WEB_MIDI}
API_LABELS = {ALSA: "ALSA", JACK: "JACK", rtmidi.API_MACOSX_CORE: "CoreMIDI", rtmidi.API_WINDOWS_MM: "WinMM", rtmidi.API_WEB_MIDI: "Web MIDI"}
ALSA_SEQUENCER = "/dev/snd/seq"

Client = TypeVar("Client", rtmidi.MidiIn, rtmidi.MidiOut)


def label(api: int) -> str:
    """'ALSA', 'JACK', ... for status lines."""
    return API_LABELS.get(api, rtmidi.get_api_display_name(api))


def compiled_apis() -> list[int]:
    """The APIs this python-rtmidi was built with, in the order 'auto' tries them: ALSA, JACK, others."""
    compiled = [a for a in rtmidi.get_compiled_api() if a in API_LABELS]
    return sorted(compiled, key=lambda a: {ALSA: 0, JACK: 1}.get(a, 2))


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C libraries' chatter) for a moment; Python's stderr too."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def realtime_jack_threads(priority: int = 60, name: str = "jack-client") -> Iterator[None]:
    """Give the threads libjack starts inside this block real-time (FIFO) priority where allowed,
    and ``name`` in the kernel (so ``top -H`` and bench/audio.py can tell whose they are).

    A real-time JACK server gives its clients' process threads real-time priority itself; under a
    server started without it (a dummy server, a busy laptop) a normal client thread misses cycles
    and what it sends or receives in a missed cycle can be lost. Without permission, nothing changes.
    """
    def threads() -> set[int]:
        try:
            return {int(tid) for tid in os.listdir("/proc/self/task")}
        except OSError:
            return set()

    before = threads()
    yield
    python_threads = {t.native_id for t in threading.enumerate()}
    for tid in threads() - before - python_threads:
        try:
            if os.sched_getscheduler(tid) not in (os.SCHED_FIFO, os.SCHED_RR):  # a real-time server's own
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
        except (OSError, AttributeError):
            pass
        try:
            with open(f"/proc/self/task/{tid}/comm", "w") as comm:
                comm.write(name[:15])
        except OSError:
            pass


def try_client(cls: type[Client], api: int, name: str) -> Client | None:
    """A client on ``api``, or None where the API does not work here (no sequencer, no server)."""
    if api == ALSA and not os.access(ALSA_SEQUENCER, os.R_OK | os.W_OK):
        return None  # alsa-lib would only complain on stderr
    with quiet_stderr(), realtime_jack_threads(name="midi-jack"):
        try:
            return cls(api, name=name)
        except (rtmidi.RtMidiError, RuntimeError):
            return None


def midi_available() -> tuple[bool, str]:
    """Whether any MIDI API works on this machine now: ``(True, "JACK")`` or ``(False, why)``
    (the engine falls back to recording). Never raises."""
    for api in compiled_apis():
        client = try_client(rtmidi.MidiOut, api, f"{PRODUCT} probe")
        if client is not None:
            client.delete()
            return True, label(api)
    return False, _why_none(compiled_apis())


def _why_not(api: int) -> str:
    if api == ALSA:
        return f"no ALSA sequencer ({ALSA_SEQUENCER}; load the snd-seq module)"
    if api == JACK:
        return "no JACK server running (start one: jackd, qjackctl or PipeWire's JACK)"
    return "it does not work on this machine"


def _why_none(apis: list[int]) -> str:
    return "; ".join(f"{label(a)}: {_why_not(a)}" for a in apis) or "python-rtmidi has no MIDI API compiled in"


def open_client(cls: type[Client], api: str, name: str, flag: str = "--midi-api") -> tuple[Client, int]:
    """A MidiIn or MidiOut client named ``name`` on the API chosen by ``api`` ('auto', 'alsa',
    'jack', ...): with 'auto', the first that works here. Raises UsageError saying why not."""
    choice = api.strip().lower()
    compiled = compiled_apis()
    names = ", ".join(n for n, a in API_NAMES.items() if a in compiled)
    if choice == "auto":
        for candidate in compiled:
            client = try_client(cls, candidate, name)
            if client is not None:
                return client, candidate
        raise UsageError(f"{flag} auto: no MIDI API works here ({_why_none(compiled)}); or play without MIDI: --midi-out none")
    if choice not in API_NAMES:
        raise UsageError(f"{flag} {api}: unknown MIDI API; choose auto or one of: {names}")
    if API_NAMES[choice] not in compiled:
        raise UsageError(f"{flag} {api}: python-rtmidi here is built without it; choose auto or one of: {names}")
    client = try_client(cls, API_NAMES[choice], name)
    if client is None:
        raise UsageError(f"{flag} {api}: not usable: {_why_not(API_NAMES[choice])}; or choose {flag} auto")
    return client, API_NAMES[choice]


def find_port(ports: list[str], wanted: str, flag: str = "--midi-out", kind: str = "input") -> int:
    """Index of the port whose name contains ``wanted`` (case-insensitive; an exact name wins).
    Raises UsageError listing the ports when none or several match."""
    key = wanted.casefold()
    exact = [i for i, p in enumerate(ports) if p.casefold() == key]
    if exact:
        return exact[0]
    matches = [i for i, p in enumerate(ports) if key in p.casefold()]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(repr(p) for p in ports) if ports else "none"
    if not matches:
        raise UsageError(f"{flag} {wanted}: no MIDI {kind} port matches; available: {listing} (or {flag} virtual)")
    found = ", ".join(repr(ports[i]) for i in matches)
    raise UsageError(f"{flag} {wanted}: matches {len(matches)} MIDI {kind} ports ({found}); give more of the name")


def jack_server_socket() -> str:
    """Where jackd2 on Linux listens for the server named by JACK_DEFAULT_SERVER ('default')."""
    server = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    return f"/dev/shm/jack_{server}_{os.getuid()}_0"


def jack_server_id() -> int | None:
    """Identity of the running jackd2 server (its socket's inode), None if none answers.

    A cheap check that holds no lock and prints nothing: a restarted server has a new socket,
    a crashed one refuses connections. Only meaningful where the socket exists (jackd2, not
    PipeWire's JACK); callers check that once with ``os.path.exists(jack_server_socket())``.
    """
    path = jack_server_socket()
    try:
        inode = os.stat(path).st_ino
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            probe.connect(path)
        return inode
    except OSError:
        return None


def open_port(cls: type[Client], target: str, api: str, port_name: str, *, client_name: str | None = None,
              flag: str = "--midi-out", api_flag: str = "--midi-api", kind: str = "input") -> tuple[Client, int, str | None]:
    """Our port for ``target``: 'virtual' (a port named ``port_name`` for others to connect to) or
    part of the name of another program's ``kind`` port, connected to it. Returns (client, API,
    the full name of the port connected to, or None for virtual). UsageError (one line) otherwise."""
    client, api_id = open_client(cls, api, client_name or port_name, flag=api_flag)
    try:
        if target.strip().lower() == "virtual":
            client.open_virtual_port(port_name)
            return client, api_id, None
        ports = client.get_ports()
        index = find_port(ports, target, flag=flag, kind=kind)
        client.open_port(index, port_name)
        return client, api_id, ports[index]
    except UsageError:
        client.delete()
        raise
    except Exception as error:  # e.g. no virtual ports on Windows
        client.delete()
        raise UsageError(f"{flag} {target}: cannot open it with {label(api_id)} ({error}); try another {flag}") from None


def close_client(client: Client, server_gone: bool = False) -> None:
    """Close a client's port and free it; never raises. A client whose JACK server has gone is
    abandoned instead: closing it waits a second with the GIL held, or crashes the process once a
    new server runs (seen here: exit 139 in close_port after a restart)."""
    if server_gone:
        abandon(client)
        return
    try:
        client.close_port()
        client.delete()
    except Exception as error:
        log.debug("closing a MIDI client: %s", error)


def abandon(client: Client) -> None:
    """Keep a client of a dead JACK server alive until the process ends: freeing it would close it,
    which crashes or stalls (see ``close_client``). A few kilobytes per server loss."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(client))


class ServerWatch:
    """Notices a JACK server that stopped or restarted under a client on ``api``, by the server's
    socket (``jack_server_id``): no rtmidi call, no lock, nothing printed. Other APIs (and a JACK
    without jackd2's socket, such as PipeWire's) are never reported lost."""

    def __init__(self, api: int):
        self.tracking = api == JACK and os.path.exists(jack_server_socket())
        self.server = jack_server_id() if self.tracking else None

    def changed(self) -> int | None | bool:
        """False while the server we opened on runs; else the new server's id (None: none runs)."""
        if not self.tracking:
            return False
        server = jack_server_id()
        return False if server == self.server else server

    def follow(self, server: int | None) -> None:
        """Our client now lives on ``server``."""
        self.server = server

    @property
    def gone(self) -> bool:
        """Whether the server we opened on has stopped or been replaced."""
        return self.changed() is not False
