"""OSC control: an address for every live parameter, the patch's OSC mappings, and ``/state``.

Addresses are parameter names with dots as slashes: ``/temperature 0.7``,
``/stimulation/weight 0.3``, ``/bias/scale dorian``, ``/ablation/units 3 17 40`` (a list as
several arguments), ``/hold 1``; triggers ``/tune/new`` and ``/panic``. ``/state`` answers the
sender with one message ``/state`` holding a JSON string of every parameter's value, and under
``status`` what the instrument runs (step path and precision, outputs, controllers: a MIDI input
lost with its JACK server says so there) and what each controller counted (``counts``); senders
on other machines are answered a few times a second (see ``StateGate``). A datagram up to 64 KiB
arrives whole.
``/midi/learn NAME`` arms MIDI learn for a parameter.

Anything can arrive on a UDP port: every datagram is parsed and handled inside a catch-all,
so garbage is counted and logged (rate-limited) and the server goes on.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import select
import socket
import threading
import time
from typing import Any, Callable

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from controllers.control import BATCH_S, Latest, fire, set_value
from controllers.router import Router
from controllers.report import Reporter
from instrument.errors import UsageError, excerpt
from instrument.live.params import ParamError, Parameters

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
MAX_DATAGRAM = 65536  # a bundle or list up to 64 KiB arrives whole (UDP's own limit is 65,507)
STATE_RATE = 2.0  # /state replies per second to senders off this machine (burst STATE_BURST)
STATE_BURST = 4

MAX_BATCH = 4096  # datagrams read before a batch is handed on
Message = tuple[str, list, tuple]  # (address, args, sender's (host, port))
Handler = Callable[[str, list, tuple], None]
BatchHandler = Callable[[list[Message]], None]


class OscListener:
    """A UDP OSC server on its own thread calling ``handler(address, args, sender)`` for every
    message (bundles unpacked, their time tags ignored: live input is applied as it comes).

    The thread reads every datagram that has arrived before it hands any on, and with ``batch_s``
    it reads at most once per ``batch_s``: under a flood it wakes once a batch instead of once a
    message, and ``on_batch`` (when given, instead of ``handler`` message by message) sees the
    whole batch, so that it can keep only the latest value of each address (``controllers.control``).
    """

    def __init__(self, handler: Handler, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 reporter: Reporter | None = None, flag: str = "--osc-port", name: str = "osc",
                 on_batch: BatchHandler | None = None, batch_s: float = 0.0):
        self.handler = handler
        self.on_batch = on_batch
        self.batch_s = batch_s
        self.reporter = reporter or Reporter("OSC")
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._socket.bind((host, port))
        except OSError as error:
            self._socket.close()
            why = "in use (another instrument or app?)" if error.errno in (98, 48, 10048) else str(error)
            raise UsageError(f"{flag} {port}: cannot listen on {host}:{port}: {why}; choose another {flag}") from None
        try:  # room for a burst of the largest datagrams while a batch is being handled
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MAX_DATAGRAM)
        except OSError:
            pass
        self._socket.setblocking(False)
        self.host, self.port = self._socket.getsockname()[:2]
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{name}-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock, stop = self._socket, self._stop
        while not stop.is_set():
            try:
                readable = select.select([sock], [], [], 0.1)[0]
            except (OSError, ValueError):  # closed under us
                return
            if not readable:
                continue
            began = time.monotonic()
            batch: list[Message] = []
            for _ in range(MAX_BATCH):  # a bounded batch: a flood never keeps the thread reading
                try:
                    data, sender = sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # e.g. an ICMP error for a reply we sent: the next datagram is fine
                    break
                self._datagram(data, sender, batch)
            self._hand_on(batch)
            if self.batch_s:
                stop.wait(max(0.0, began + self.batch_s - time.monotonic()))

    def _datagram(self, data: bytes, sender: tuple, batch: list[Message]) -> None:
        """Parse one datagram into ``batch``; a malformed one is counted and reported."""
        try:
            if data.startswith(BUNDLE) and not _bundle_well_formed(data):
                raise ValueError("malformed bundle")  # python-osc would log every bad element
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as error:
            self.reporter.got()
            self.reporter.ignore(f"malformed packet of {len(data)} bytes from {sender[0]}:{sender[1]} ({excerpt(error)})")
            return
        if not messages:
            self.reporter.got()  # an empty bundle: legal, and nothing to do
        for message in messages:
            self.reporter.got()
            batch.append((message.address, list(message.params), sender))

    def _hand_on(self, batch: list[Message]) -> None:
        if self.on_batch is not None and batch:
            try:
                self.on_batch(batch)
            except Exception as error:  # a bug must not stop the server
                self.reporter.ignore(f"a batch of {len(batch)} messages: {type(error).__name__}: {excerpt(error)}")
            return
        for address, args, sender in batch:
            try:
                self.handler(address, args, sender)
            except Exception as error:  # a bug or a bad value must not stop the server
                self.reporter.ignore(f"{excerpt(address, 60)}: {type(error).__name__}: {excerpt(error)}")

    def reply(self, sender: tuple, address: str, *args: Any) -> None:
        """Send one message back to ``sender`` from our own port (where OSC apps listen for it)."""
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        try:
            self._socket.sendto(builder.build().dgram, sender)
        except OSError as error:
            self.reporter.warn(f"reply to {sender[0]}:{sender[1]} failed ({error})")

    def close(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(2.0)
        self._socket.close()


BUNDLE = b"#bundle\x00"


def _bundle_well_formed(data: bytes, depth: int = 0) -> bool:
    """Whether every element of an OSC bundle is a sized message or bundle (checked before
    python-osc parses it: it logs a warning on the root logger for each bad element)."""
    if depth > 8 or len(data) < 16:
        return False
    i = 16  # '#bundle\0' and the time tag
    while i < len(data):
        size = int.from_bytes(data[i:i + 4], "big") if i + 4 <= len(data) else -1
        i += 4
        if size <= 0 or size % 4 or i + size > len(data):
            return False
        content = data[i:i + size]
        if content.startswith(BUNDLE):
            if not _bundle_well_formed(content, depth + 1):
                return False
        elif not content.startswith(b"/"):
            return False
        i += size
    return True


class StateGate:
    """Whom ``/state`` answers. Its reply is some 50 times the request, so over UDP, where a
    sender's address can be forged, an open ``/state`` would let anyone aim that at a third
    party (a reflection amplifier). Senders on this machine are always answered; others
    (``--osc-host 0.0.0.0``) share a budget of ``rate`` replies a second, ``burst`` at once."""

    def __init__(self, rate: float = STATE_RATE, burst: int = STATE_BURST, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def allow(self, host: str) -> bool:
        if _loopback(host):
            return True
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def address_of(name: str) -> str:
    """The OSC address of a parameter: ``stimulation.weight`` -> ``/stimulation/weight``."""
    return "/" + name.replace(".", "/")


class OscControl:
    """The instrument's OSC port: parameter addresses, the patch's mappings, ``/state``."""

    def __init__(self, params: Parameters, router: Router, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 reporter: Reporter | None = None, learn: Callable[[str], str] | None = None):
        self.params = params
        self.router = router
        self.learn = learn  # MIDI learn, when a MIDI input is open
        self.status_of: Callable[[], dict] | None = None  # what /state says beside the parameters
        self.reporter = reporter or Reporter("OSC")
        self._names = {address_of(name): params.canonical(name) for name in params.lookup()}  # /voice/1/X is X
        self._state_gate = StateGate()
        self.latest = Latest(self.reporter)
        self.listener = OscListener(self._message, host, port, self.reporter, on_batch=self._batch, batch_s=BATCH_S)
        self.host, self.port = self.listener.host, self.listener.port

    def status(self) -> str:
        return f"OSC {self.host}:{self.port} {self.reporter.counts()}"

    def close(self) -> None:
        self.listener.close()

    def _batch(self, batch: list[Message]) -> None:
        """What arrived since the last batch, in order. A value for a parameter or a patch mapping
        is kept until the end of the batch, replaced by any later one for the same address, then
        applied once; everything else (a trigger, an action, ``/state``) is handled in its place,
        after what was kept before it, so that it sees those values."""
        latest = self.latest
        for address, args, sender in batch:
            if self._only_latest_counts(address, args):
                latest.keep(address, address, lambda a=address, x=args, s=sender: self._message(a, x, s))
                continue
            if address in self._names or address in ("/state", "/midi/learn") or self.router.listens(("osc", address)):
                latest.flush()
            try:
                self._message(address, args, sender)
            except Exception as error:  # a bug or a bad value must not stop the server
                self.reporter.ignore(f"{excerpt(address, 60)}: {type(error).__name__}: {excerpt(error)}")
        latest.flush()

    def _only_latest_counts(self, address: str, args: list) -> bool:
        """A good value for a parameter's own address (not a trigger's), or numbers for an address
        the patch only maps (no action counts its presses): a later one replaces it. A bad value
        is never kept: it is reported in its place and cannot replace a good one."""
        router, source = self.router, ("osc", address)
        if router.listens(source):
            return not router.momentary(source) and bool(args) and all(isinstance(a, (int, float)) for a in args)
        name = self._names.get(address)
        if name is None or not args:
            return False
        spec = self.params.specs[name]
        if spec.kind == "trigger" or (spec.kind != "list" and len(args) != 1):
            return False
        try:
            spec.coerce(args if spec.kind == "list" else args[0])
        except ParamError:
            return False
        return True

    def _message(self, address: str, args: list, sender: tuple) -> None:
        origin = f"OSC {address}"
        if address == "/state":
            if not self._state_gate.allow(sender[0]):
                self.reporter.ignore(f"/state from {sender[0]}: over {STATE_RATE:g} a second from other machines; not answered")
                return
            state = self.params.snapshot()
            if self.status_of is not None:
                state["status"] = self.status_of()
            self.listener.reply(sender, "/state", json.dumps(state))
            return
        if address == "/midi/learn":
            self._learn(args)
            return
        if self._mapped(address, args, origin):
            return
        name = self._names.get(address)
        if name is None:
            self.reporter.ignore(f"unknown address {address} (parameters are /name/with/slashes; /state lists them)")
            return
        spec = self.params.specs[name]
        if spec.kind == "trigger":
            if not args or _pressed(args[0]):
                if fire(self.params, name, origin, self.reporter):
                    self.reporter.did(f"{address}")
            return
        if not args:
            self.reporter.ignore(f"{address} needs a value")
            return
        if spec.kind == "list":
            value: Any = args
        elif len(args) != 1:
            self.reporter.ignore(f"{address} takes one value, not {len(args)}")
            return
        else:
            value = args[0]
        taken = set_value(self.params, name, value, origin, self.reporter)
        if taken is not None:
            self.reporter.did(f"{address} {taken}", key=address)

    def _mapped(self, address: str, args: list, origin: str) -> bool:
        """Apply the patch's mappings and actions for ``address``; False if it has none."""
        router = self.router
        if not router.handles(("osc", address, 0)) and not any(router.handles(("osc", address, i)) for i in range(1, len(args))):
            return False
        if not args:
            router.route(("osc", address, 0), None, origin, self.reporter)
            return True
        for i, arg in enumerate(args):
            if isinstance(arg, bool):
                arg = float(arg)
            if isinstance(arg, (int, float)):
                router.route(("osc", address, i), arg, origin, self.reporter)
            elif router.handles(("osc", address, i)):
                self.reporter.ignore(f"{address} argument {i} should be a number, not {arg!r}")
        return True

    def _learn(self, args: list) -> None:
        if self.learn is None:
            self.reporter.ignore("/midi/learn: no MIDI input is open")
        elif len(args) != 1 or not isinstance(args[0], str):
            self.reporter.ignore("/midi/learn takes a parameter name, e.g. /midi/learn temperature")
        else:
            self.learn(args[0])


def _pressed(arg: Any) -> bool:
    """A trigger's argument: fire on 1 (a button pressed), not on the 0 of its release."""
    if isinstance(arg, (int, float)):
        return arg >= 0.5
    return True
