"""The instrument's web page: one HTTP server with one WebSocket per browser, in its own thread.

Why aiohttp: one well-kept library serves the page, the static files and the WebSockets, gives
the handshake's headers to check before the upgrade, and runs on an event loop we own, in a
thread we start (no server framework that wants the main thread or its signals; starlette
would need uvicorn and a WebSocket library beside it for the same).

What it does and never does:
- every ``1 / rate`` seconds (at most 30 a second) it asks its ``Source`` for what changed
  (``poll``: values the engine published, read without waiting) and sends that one delta, encoded
  once, to every browser; a browser that joins, or falls behind, gets ``snapshot`` instead, so
  every browser shows the same state;
- what a browser sends goes to ``Control.receive`` (``controllers/web.py`` turns it into parameter
  changes through the patch's router); the model and timing threads never wait for any of it:
  the server only takes the GIL for short polls and sends, and never a lock they hold;
- security: bound to 127.0.0.1 by default; there, a request whose Host is not a loopback name
  is refused (a foreign page reaching us by DNS rebinding). On any other address the page is
  open to look at, but controlling needs the token printed at start (``?token=``, as Jupyter
  does). A WebSocket whose Origin is not this server is refused, so no other page in the
  performer's browser can steer the instrument; the page may not be framed by another site.
  Messages are bounded in size and rate per browser; malformed ones are counted and logged
  (rate-limited) by the control and ignored.

Messages (JSON text frames). Server to page: ``hello`` (what the page shows and whether it may
control), ``full`` (the whole state), ``delta`` (what changed), ``pong``. Page to server: ``set``,
``fire``, ``pad`` (see ``controllers/web.py``) and ``ping`` (answered here: the page's clock).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from instrument.errors import UsageError

log = logging.getLogger("instrument.web")

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765
DEFAULT_PORTS_TRIED = 10  # the default port taken (another instrument): the next ones are tried
MAX_RATE = 30.0  # state updates a second, at most
MAX_MESSAGE = 4096  # bytes of one message from a page; more closes that connection
MAX_MESSAGES_PER_S = 200  # from one page; more are dropped (and reported) until the second is over
LAG_FRAMES = 60  # a browser this many updates behind gets a full state instead (it fell behind)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


class Source(Protocol):
    """What the page shows: ``instrument.web.live.LiveSource`` or ``instrument.web.take.TakeSource``.
    Called on the server's thread only."""

    def hello(self) -> dict[str, Any]:
        """What does not change: the parameters and their ranges, the pad's labels, the mode."""

    def snapshot(self) -> dict[str, Any]:
        """The whole state as the deltas so far have built it."""

    def poll(self) -> dict[str, Any] | None:
        """What changed since the last poll (None: nothing)."""


class Control(Protocol):
    """Where a page's messages go (``controllers.web.WebControl``)."""

    def receive(self, data: str | bytes, client: str, allowed: bool) -> None:
        """One message from ``client``; ``allowed``: whether it may control (its token)."""

    def refuse(self, why: str) -> None:
        """A connection or message refused before it reached ``receive``: count and log it."""


def parse_address(text: str, flag: str = "--web") -> tuple[str, int]:
    """``[HOST:]PORT`` (IPv6 as ``[::1]:PORT``) -> (host, port); UsageError if it is not that."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{flag} takes [HOST:]PORT, e.g. 8765 or 0.0.0.0:8765, not {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class _Client:
    ws: Any
    name: str
    allowed: bool
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    fresh: bool = True  # needs hello + full before any delta
    window: float = 0.0  # start of the current second of the rate limit
    count: int = 0  # messages in it
    dropped: int = 0


class WebServer:
    """The page for one ``Source``, served from a thread of its own; see the module docstring."""

    def __init__(self, source: Source, control: Control, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 token: str | None = None, rate: float = MAX_RATE, try_next: int = 0, flag: str = "--web"):
        """``token``: None makes one when ``host`` is not loopback ("" never asks for one);
        ``try_next``: ports after ``port`` to try when it is taken (for the default port)."""
        self.source, self.control = source, control
        self.host, self.port = host, port
        self.loopback = is_loopback(host)
        self.token = (secrets.token_urlsafe(18) if not self.loopback else "") if token is None else token
        self.interval = 1.0 / min(rate, MAX_RATE)
        self.try_next, self.flag = try_next, flag
        self.clients: list[_Client] = []
        self.frames = 0  # deltas sent (each to every browser)
        self.poll_us: deque[float] = deque(maxlen=10_000)  # time each poll and encode took (the bench reads it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle (any thread) -----------------------------------------------------------------
    def start(self) -> "WebServer":
        """Bind and serve; returns once the port is open (UsageError if it cannot be)."""
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()
        self._started.wait(20)
        if self._error is not None:
            self._thread.join(2)
            raise self._error
        return self

    @property
    def url(self) -> str:
        """The page's address, with the token when one is needed to control."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1" if host != "::" else "[::1]"  # where this machine reaches it; others use its address
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def status(self) -> str:
        return f"Web {self.url} {len(self.clients)} pages"

    def close(self) -> None:
        """Close every connection and the port. Idempotent, never raises."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            loop.call_soon_threadsafe(self._stopping.set)
        except RuntimeError:  # the loop is already closed
            pass
        thread.join(5)

    # -- the server's thread ------------------------------------------------------------------------
    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except BaseException as error:  # noqa: BLE001 - reported to start() or logged
            if not self._started.is_set():
                self._error = error if isinstance(error, UsageError) else UsageError(f"{self.flag}: {error}")
            else:
                log.exception("the web page's server failed; the music goes on")
        finally:
            self._started.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _main(self) -> None:
        from aiohttp import web

        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._middleware()], client_max_size=MAX_MESSAGE)
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        runner = self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await self._bind(runner)
        self._started.set()
        broadcaster = asyncio.ensure_future(self._broadcast())
        try:
            await self._stopping.wait()
        finally:
            broadcaster.cancel()
            for client in list(self.clients):
                await _quietly(client.ws.close())
            await runner.cleanup()

    async def _bind(self, runner) -> None:
        from aiohttp import web

        first = self.port
        for port in range(first, first + 1 + (self.try_next if first else 0)):
            site = web.TCPSite(runner, self.host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as error:
                in_use = error.errno in (98, 48, 10048)
                if in_use and port < first + self.try_next:
                    continue
                why = "in use (another instrument or program?)" if in_use else (error.strerror or str(error))
                raise UsageError(f"{self.flag}: cannot serve the page on {self.host}:{port}: {why}; "
                                 f"choose another {self.flag} [HOST:]PORT, or --no-web") from None
            self.port = site._server.sockets[0].getsockname()[1]  # the port taken (0 asks for any free one)
            return

    # -- HTTP ------------------------------------------------------------------------------------------
    def _host_ok(self, request) -> bool:
        """On loopback, the Host must name loopback: a foreign site that rebinds its name to
        127.0.0.1 reaches us with its own name in Host."""
        if not self.loopback:
            return True
        host = request.host
        name = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
        return name in LOOPBACK_NAMES

    def _middleware(self):
        from aiohttp import web

        @web.middleware
        async def guard(request, handler):
            if not self._host_ok(request):
                self.control.refuse(f"request for Host {request.host!r} refused (this page answers to 127.0.0.1 and localhost)")
                raise web.HTTPForbidden(text="this page answers to 127.0.0.1 and localhost only\n")
            response = await handler(request)
            if not isinstance(response, web.WebSocketResponse):
                response.headers.setdefault("X-Frame-Options", "DENY")  # no other site may frame the controls
                response.headers.setdefault("Content-Security-Policy",
                                            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
                response.headers.setdefault("X-Content-Type-Options", "nosniff")
                response.headers.setdefault("Cache-Control", "no-store")
            return response

        return guard

    async def _index(self, request):
        from aiohttp import web

        return web.FileResponse(STATIC / "index.html")

    async def _websocket(self, request):
        from aiohttp import web

        origin = request.headers.get("Origin")
        if origin is not None and origin != f"http://{request.host}":
            self.control.refuse(f"WebSocket from Origin {origin!r} refused (only this page, http://{request.host}, may connect)")
            raise web.HTTPForbidden(text="WebSocket connections come from this page only\n")
        token = request.query.get("token", "")
        allowed = not self.token or hmac.compare_digest(token.encode(), self.token.encode())
        if token and not allowed:
            self.control.refuse(f"wrong token from {request.remote}: that page may look but not control")
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=20.0, compress=False)
        await ws.prepare(request)
        client = _Client(ws, f"{request.remote}", allowed)
        self.clients.append(client)
        sender = asyncio.ensure_future(self._send(client))
        try:
            async for message in ws:
                self._received(client, message)
        finally:
            sender.cancel()
            if client in self.clients:
                self.clients.remove(client)
        return ws

    def _received(self, client: _Client, message) -> None:
        from aiohttp import WSMsgType

        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            if message.type == WSMsgType.ERROR:
                self.control.refuse(f"{client.name}: {message.data} (connection closed)")
            return
        now = time.monotonic()
        if now - client.window >= 1.0:
            if client.dropped:
                self.control.refuse(f"{client.name}: {client.dropped} messages over {MAX_MESSAGES_PER_S}/s dropped")
            client.window, client.count, client.dropped = now, 0, 0
        client.count += 1
        if client.count > MAX_MESSAGES_PER_S:
            client.dropped += 1
            return
        data = message.data
        if isinstance(data, str) and data.startswith('{"op":"ping"'):
            self._pong(client, data)
            return
        try:
            self.control.receive(data, client.name, client.allowed)
        except Exception:  # a bug in the control must not close the page
            log.exception("a page's message could not be handled")

    def _pong(self, client: _Client, data: str) -> None:
        try:
            sent = json.loads(data).get("t")
        except ValueError:
            sent = None
        client.queue.put_nowait(json.dumps({"type": "pong", "t": sent if isinstance(sent, (int, float)) else None,
                                            "server": time.perf_counter()}))

    # -- state to the pages --------------------------------------------------------------------------
    async def _send(self, client: _Client) -> None:
        ws = client.ws
        try:
            while True:
                text = await client.queue.get()
                await ws.send_str(text)
        except (ConnectionError, RuntimeError):  # the page went away: its handler cleans up
            return

    async def _broadcast(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > self.interval:  # fell behind (a stall): no catching up in a burst
                next_at = loop.time()
            try:
                self._tick()
            except Exception:
                log.exception("the web page's state could not be built")

    def _tick(self) -> None:
        t0 = time.perf_counter()
        delta = self.source.poll()
        text = json.dumps(delta, separators=(",", ":")) if delta is not None else None
        hello = full = None
        for client in self.clients:
            queue = client.queue
            if not client.fresh and queue.qsize() > LAG_FRAMES:
                while not queue.empty():  # behind: what it missed comes as one full state
                    queue.get_nowait()
                client.fresh = True
            if client.fresh:
                if full is None:
                    hello = dict(self.source.hello(), type="hello", token=bool(self.token))
                    full = json.dumps(dict(self.source.snapshot(), type="full"), separators=(",", ":"))
                queue.put_nowait(json.dumps(dict(hello, control=client.allowed), separators=(",", ":")))
                queue.put_nowait(full)
                client.fresh = False
            elif text is not None:
                queue.put_nowait(text)
        if text is not None:
            self.frames += 1
        self.poll_us.append((time.perf_counter() - t0) * 1e6)


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception:
        pass
