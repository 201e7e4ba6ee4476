"""OSC control: an address for every live parameter, the patch's OSC mappings, and ``/state``.

Addresses are parameter names with dots as slashes: ``/temperature 0.7``,
``/stimulation/weight 0.3``, ``/bias/scale dorian``, ``/ablation/units 3 17 40`` (a list as
several arguments), ``/hold 1``; triggers ``/tune/new`` and ``/panic``. ``/state`` answers the
sender with one message ``/state`` holding a JSON string of every parameter's value, and under
``status`` what the instrument runs (step path and precision, outputs, controllers: a MIDI input
lost with its JACK server says so there); senders on other machines are answered a few times a
second (see ``StateGate``). A datagram up to 64 KiB arrives whole.
``/midi/learn NAME`` arms MIDI learn for a parameter.

Anything can arrive on a UDP port: every datagram is parsed and handled inside a catch-all,
so garbage is counted and logged (rate-limited) and the server goes on.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import socketserver
import threading
import time
from typing import Any, Callable

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from pythonosc.osc_server import BlockingOSCUDPServer

from controllers.control import fire, set_value
from controllers.router import Router
from controllers.report import Reporter
from instrument.errors import UsageError, excerpt
from instrument.live.params import Parameters

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
MAX_DATAGRAM = 65536  # a bundle or list up to 64 KiB arrives whole (UDP's own limit is 65,507)
STATE_RATE = 2.0  # /state replies per second to senders off this machine (burst STATE_BURST)
STATE_BURST = 4

Handler = Callable[[str, list, tuple], None]  # (address, args, sender's (host, port))


class _Datagram(socketserver.BaseRequestHandler):
    """Hands every datagram to its listener; python-osc's own handler would let a parse error
    of a malformed packet escape into socketserver's traceback printer."""

    def handle(self) -> None:
        self.server.listener._datagram(self.request[0], self.request[1], self.client_address)


class _Server(BlockingOSCUDPServer):
    """python-osc's blocking UDP server (one thread, messages in the order they came) with our
    handler, and no datagram refused or traceback printed before we have counted it."""

    max_packet_size = MAX_DATAGRAM  # socketserver's default, 8,192 bytes, cut longer lists short

    def __init__(self, address: tuple[str, int], listener: "OscListener"):
        super().__init__(address, Dispatcher())
        try:  # room for a burst of the largest datagrams while a message is being handled
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MAX_DATAGRAM)
        except OSError:
            pass
        self.RequestHandlerClass = _Datagram
        self.listener = listener

    def verify_request(self, request, client_address) -> bool:
        return True

    def handle_error(self, request, client_address) -> None:
        self.listener.reporter.ignore(f"datagram from {client_address[0]} could not be handled")


class OscListener:
    """A UDP OSC server on its own thread calling ``handler(address, args, sender)`` for every
    message (bundles unpacked, their time tags ignored: live input is applied as it comes)."""

    def __init__(self, handler: Handler, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 reporter: Reporter | None = None, flag: str = "--osc-port", name: str = "osc"):
        self.handler = handler
        self.reporter = reporter or Reporter("OSC")
        try:
            self._server = _Server((host, port), self)
        except OSError as error:
            why = "in use (another instrument or app?)" if error.errno in (98, 48, 10048) else str(error)
            raise UsageError(f"{flag} {port}: cannot listen on {host}:{port}: {why}; choose another {flag}") from None
        self.host, self.port = self._server.server_address[:2]
        self._closed = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{name}-server", daemon=True)
        self._thread.start()

    def _datagram(self, data: bytes, sock: socket.socket, sender: tuple) -> None:
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
            try:
                self.handler(message.address, list(message.params), sender)
            except Exception as error:  # a bug or a bad value must not stop the server
                self.reporter.ignore(f"{excerpt(message.address, 60)}: {type(error).__name__}: {excerpt(error)}")

    def reply(self, sender: tuple, address: str, *args: Any) -> None:
        """Send one message back to ``sender`` from our own port (where OSC apps listen for it)."""
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        try:
            self._server.socket.sendto(builder.build().dgram, sender)
        except OSError as error:
            self.reporter.warn(f"reply to {sender[0]}:{sender[1]} failed ({error})")

    def close(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)


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
        self.listener = OscListener(self._message, host, port, self.reporter)
        self.host, self.port = self.listener.host, self.listener.port

    def status(self) -> str:
        return f"OSC {self.host}:{self.port} {self.reporter.counts()}"

    def close(self) -> None:
        self.listener.close()

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
