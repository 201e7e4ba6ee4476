"""The web page's server and control without a browser: real sockets on loopback, a real
engine, the real router. The browser tests are in test_web_browser.py."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace

import aiohttp
import pytest

from controllers.router import Router
from controllers.patch import PatchError, parse_patch
from controllers.report import Reporter
from controllers.web import WebControl, pad_labels
from instrument.errors import UsageError
from instrument.live.composer import Composer
from instrument.live.engine import LATE_RESYNC_S, Engine, Limits
from instrument.live.params import Parameters
from instrument.timing import Scheduler
from instrument.music.notes import tune_notes
from instrument.music.tunes import AbcWriter, Tune, abc_body, abc_body_tokens
from instrument.web.live import LiveSource
from instrument.web.server import WebServer, parse_address
from bench.harness.wait import wait_for
from tests.helpers import make_model, run_cli
from tests.timing import machine_jitter

PAD_PATCH = """
name: pad
mappings:
  - source: {web: x}
    target: temperature
    range: [0, 2]
    takeover: pickup
  - source: {web: y}
    target: swing
actions:
  - source: {web: touch2}
    toggle: hold
"""


class Quiet(Reporter):
    """A Reporter whose warnings are kept for the test (the real rate limit applies)."""

    def __init__(self):
        self.lines: list[str] = []
        super().__init__("Web", logger=logging.getLogger("test.web"))
        self.log = SimpleNamespace(warning=lambda fmt, *args: self.lines.append(fmt % args))


def make_control(patch: str = PAD_PATCH) -> tuple[Parameters, WebControl, Quiet]:
    params = Parameters()
    reporter = Quiet()
    return params, WebControl(params, Router(params, parse_patch(patch)), reporter), reporter


# -- the control -------------------------------------------------------------------------------------
def test_a_slider_sets_its_parameter_and_says_it_was_the_page():
    params, control, _ = make_control()
    control.receive(json.dumps({"op": "set", "name": "tempo", "value": 150}), "127.0.0.1", True)
    control.receive(json.dumps({"op": "set", "name": "bias.scale", "value": "dorian"}), "192.168.1.5", True)
    control.receive(json.dumps({"op": "fire", "name": "tune.new"}), "127.0.0.1", True)
    assert params.target("tempo") == 150.0 and params.source("tempo") == "web"
    assert params.target("bias.scale") == "dorian" and params.source("bias.scale") == "web 192.168.1.5"
    assert params.fired("tune.new") == 1


def test_the_pad_goes_through_the_patch_with_its_pickup_takeover():
    params, control, _ = make_control()
    pad = lambda *touches: control.receive(json.dumps({"op": "pad", "touches": [list(t) for t in touches]}), "127.0.0.1", True)  # noqa: E731
    pad((0.25, 0.5))
    assert params.target("temperature") == 0.5 and params.target("swing") == 0.5
    assert params.source("temperature") == "web pad"
    control.receive(json.dumps({"op": "set", "name": "temperature", "value": 1.5}), "127.0.0.1", True)  # the slider
    pad((0.3, 0.5))  # the finger is far below 1.5: pickup waits
    assert params.target("temperature") == 1.5
    pad((0.8, 0.5))  # crossed 0.75 (1.5 on the 0..2 range): the pad has it again
    assert params.target("temperature") == 1.6
    assert not params.target("hold")
    pad((0.8, 0.5), (0.1, 0.1))  # a second finger lands: the touch2 action toggles hold
    assert params.target("hold")
    pad((0.8, 0.5), (0.2, 0.1))  # still down: no second press
    assert params.target("hold")
    pad()
    pad((0.8, 0.5), (0.1, 0.1))
    assert not params.target("hold")


def test_hostile_messages_are_counted_logged_rate_limited_and_ignored():
    params, control, reporter = make_control()
    before = params.snapshot()
    hostile = ["not json", b"\x00\x01binary", "[]", "{}", '{"op": 3}', '{"op": "drop tables"}',
               '{"op": "set", "name": "no.such", "value": 1}', '{"op": "set", "name": "tempo", "value": "fast"}',
               '{"op": "set", "name": "tempo", "value": true}', '{"op": "set", "name": "tempo", "value": NaN}',
               '{"op": "set", "name": "ablation.units", "value": [-1]}', '{"op": "set", "name": ["tempo"], "value": 1}',
               '{"op": "set", "name": "tempo"}',
               '{"op": "fire", "name": "tempo"}', '{"op": "fire"}', '{"op": "pad", "touches": "x"}',
               '{"op": "pad", "touches": [[0.5]]}', '{"op": "pad", "touches": [[NaN, 0.5]]}', '{"op": "pad", "touches": [["a", 1]]}',
               '{"op": "set", "name": "stimulation.token", "value": "H#"}']
    for _ in range(20):
        for message in hostile:
            control.receive(message, "10.0.0.9", True)
    assert params.snapshot() == before
    assert reporter.ignored == 20 * len(hostile) and reporter.received == 20 * len(hostile)
    assert 0 < len(reporter.lines) <= 6  # five, then the count of those left out comes with the next window


def test_without_the_token_a_page_can_look_but_not_control():
    params, control, reporter = make_control()
    control.receive(json.dumps({"op": "set", "name": "tempo", "value": 150}), "10.0.0.9", False)
    assert params.target("tempo") == 110.0 and reporter.ignored == 1
    assert "token" in reporter.lines[0]


def test_the_patch_takes_web_sources_and_refuses_wrong_ones_at_their_line():
    patch = parse_patch(PAD_PATCH)
    assert pad_labels(Router(Parameters(), patch)) == {"x": "temperature 0..2", "y": "swing 0..1", "touch2": "toggle hold"}
    with pytest.raises(PatchError) as caught:
        parse_patch("name: x\nmappings:\n  - source: {web: touch}\n    target: tempo\n")
    assert ":3:" in str(caught.value) and "actions" in str(caught.value)
    with pytest.raises(PatchError) as caught:
        parse_patch("name: x\nmappings:\n  - source: {web: z}\n    target: tempo\n")
    assert "web: not one of: x, y" in str(caught.value)


def test_web_address_parsing():
    assert parse_address("8765") == ("127.0.0.1", 8765)
    assert parse_address("0.0.0.0:9") == ("0.0.0.0", 9)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("", "host:", "99999", "a:b"):
        with pytest.raises(Exception, match="HOST"):
            parse_address(bad)


def test_abc_read_back_gives_tokens_that_play_and_write_the_same():
    tokens = "|: G 3/2 A /2 B c d 2 | (3 e f g [ c e ] z | B > A G F :| |1 E 4 |2 ^F 2 _B, =c' | (5 A B c d e |".split()
    abc = abc_body("4/4", "maj", tokens)
    back = abc_body_tokens(abc)
    assert back == "|: G 3/2 A /2 B c d 2 | (3 e f g [ c e ] z | B 3/2 A /2 G F :| |1 E 4 |2 ^F 2 _B, =c' | (5 A B c d e |".split()
    assert abc_body("4/4", "maj", back) == abc  # the ABC of what was read back is the same text
    sounds = lambda body: [(n.pitch, n.start, n.duration) for n in tune_notes(Tune("4/4", "maj", body)).notes]  # noqa: E731
    assert sounds(back) == sounds(tokens)
    assert Tune("4/4", "maj", tokens).to_abc().endswith(abc + "\n")
    # tokens the note rules leave out are not written; a length no token spells is read whole
    assert abc_body_tokens(abc_body("4/4", "maj", "A /4 2< B | 2 ] c".split())) == "A /8 B 3/2 | c".split()
    assert abc_body_tokens(abc_body("4/4", "maj", "A 3/2 > B".split())) == ["A", "9/4", "B", "/2"]
    assert abc_body_tokens("A2>B /2<c") == ["A", "2", ">", "B", "/2", "<", "c"]  # takes written before: the same notes
    for zero in ("A/0", "A0B"):
        with pytest.raises(UsageError, match="is not a note length"):
            abc_body_tokens(zero)


# -- the server, on a real engine -------------------------------------------------------------------
class Live:
    """A real engine playing a small model into nothing, a LiveSource on it, the server."""

    def __init__(self, host: str = "127.0.0.1", token: str | None = None):
        self.params = Parameters()
        self.params.set("tempo", 240, smoothing_ms=0)
        self.params.set("meter.next", "4/4")
        scheduler = Scheduler(realtime=False)
        self.composer = Composer(make_model(), self.params, seed=3)
        self.engine = Engine(self.composer, self.params, [], scheduler, Limits(seconds=30))
        performance = SimpleNamespace(params=self.params, composer=self.composer, engine=self.engine, scheduler=scheduler)
        self.reporter = Quiet()
        self.control = WebControl(self.params, Router(self.params, parse_patch(PAD_PATCH)), self.reporter)
        self.source = LiveSource(performance, layers=3, hidden=32)
        self.server = WebServer(self.source, self.control, host, 0, token=token).start()
        self.engine.start()

    def close(self) -> None:
        self.engine.stop()
        self.server.close()
        self.source.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
def live():
    player = Live()
    yield player
    player.close()


async def _waited(condition, what: str, timeout: float = 20.0):
    """``wait_for`` from a coroutine: in a worker thread, so the event loop runs the pages meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, wait_for, condition, timeout, what)


async def _messages(url: str, seconds: float, origin: str | None = None, send: list | None = None,
                    until=None) -> list[dict]:
    """What a page receives for ``seconds``, or (``until``) until what it received satisfies
    ``until``, ``seconds`` being then only a limit for a test that fails."""
    out = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, origin=origin) as ws:
            for message in send or ():
                await ws.send_str(json.dumps(message))
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0 and not (until and until(out)):
                try:
                    message = await ws.receive(timeout=left)
                except asyncio.TimeoutError:
                    break
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                out.append(dict(json.loads(message.data), at=time.monotonic()))
    return out


@pytest.mark.realtime
def test_two_pages_get_the_same_state_and_at_most_30_updates_a_second(live):
    async def both():
        return await asyncio.gather(_messages(live.base + "/ws", 3.0, origin=live.base),
                                    _messages(live.base + "/ws", 3.0, origin=live.base))

    with machine_jitter() as jitter:
        first, second = asyncio.run(both())
    given = 3.0 - jitter.stalled  # the seconds the machine gave us
    for messages in (first, second):
        assert [m["type"] for m in messages[:2]] == ["hello", "full"]
        deltas = [m for m in messages if m["type"] == "delta"]
        span = deltas[-1]["at"] - messages[1]["at"]
        assert len(deltas) <= 30 * span + 2, (len(deltas), span)  # the decimation: whatever the load
        assert len(deltas) >= 3 * given, (len(deltas), str(jitter))  # a note at 240 BPM is 1/4 s: changes keep coming
    def notes(messages):
        out = {}
        for m in messages:
            for n in m.get("notes", ()):
                out[n["s"]] = n
        return out
    a, b = notes(first), notes(second)
    common = set(a) & set(b)
    assert len(common) >= 5 and all(a[s] == b[s] for s in common)
    def body(messages, number):
        pieces = []
        for m in messages:
            for part in m.get("tunes", ()):
                if part["number"] == number:
                    pieces[part["start"]:] = part["pieces"]
        return [p.strip() for p in pieces]
    state = live.composer.tune  # the tune now written: the pages hold the start of its ABC, a piece per token
    written = body(first, state.number)
    writer = AbcWriter(state.meter, state.mode)
    expected = [piece.strip() for token in list(state.body) for piece in writer.pieces(token)]
    assert written and written == body(second, state.number) and written == expected[:len(written)]


def test_a_foreign_origin_and_a_rebound_host_are_refused(live):
    async def attempts():
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await session.ws_connect(live.base + "/ws", origin="http://evil.example")
            assert caught.value.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:  # DNS rebinding: our address, their name
                await session.ws_connect(live.base + "/ws", headers={"Host": f"evil.example:{live.server.port}"},
                                         origin=f"http://evil.example:{live.server.port}")
            assert caught.value.status == 403
            async with session.get(live.base + "/") as page:
                assert page.status == 200 and page.headers["X-Frame-Options"] == "DENY"
            async with session.ws_connect(live.base + "/ws", origin=live.base) as ws:  # the page itself
                hello = json.loads((await ws.receive(timeout=5)).data)
                assert hello["type"] == "hello" and hello["control"] is True

    asyncio.run(attempts())
    assert sum("Origin 'http://evil.example' refused" in line for line in live.reporter.lines) == 1
    assert any("Host 'evil.example" in line for line in live.reporter.lines)


def test_a_change_sent_by_a_page_reaches_the_parameters_and_comes_back_to_every_page(live):
    echoed = lambda messages: [m for m in messages if m.get("values", {}).get("swing") == 0.25]  # noqa: E731

    async def run():
        watcher = asyncio.ensure_future(_messages(live.base + "/ws", 20.0, origin=live.base, until=echoed))
        await _waited(lambda: live.server.clients, "the watching page connected")
        await _messages(live.base + "/ws", 0.5, origin=live.base, send=[{"op": "set", "name": "swing", "value": 0.25}])
        return await watcher

    messages = asyncio.run(run())
    assert live.params.target("swing") == 0.25
    assert echoed(messages) and echoed(messages)[0]["sources"]["swing"] == "web"


def test_on_another_address_control_needs_the_token():
    player = Live(host="0.0.0.0")
    try:
        token = player.server.token
        assert len(token) >= 20 and f"?token={token}" in player.server.url
        base = player.base

        async def run():
            async with aiohttp.ClientSession() as session:
                for query, allowed in (("", False), ("?token=wrong", False), (f"?token={token}", True)):
                    async with session.ws_connect(base + "/ws" + query, origin=base) as ws:
                        hello = json.loads((await ws.receive(timeout=5)).data)
                        assert hello["control"] is allowed
                        received = player.reporter.received
                        await ws.send_str(json.dumps({"op": "set", "name": "accent", "value": 0.9 if allowed else 0.1}))
                        await _waited(lambda: player.reporter.received > received, "the message")

        asyncio.run(run())
        assert player.params.target("accent") == 0.9 and player.params.source("accent") == "web"
        assert any("token" in line for line in player.reporter.lines)
    finally:
        player.close()


def test_a_message_over_4_kib_closes_that_connection_and_changes_nothing(live):
    """The server's bound on a message: a huge list (5000 unit numbers) never reaches the parameters."""
    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(live.base + "/ws", origin=live.base) as ws:
                await ws.send_str(json.dumps({"op": "set", "name": "ablation.units", "value": list(range(5000))}))
                while (message := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
                    pass
                return message.type, ws.close_code

    kind, code = asyncio.run(run())
    assert kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING) and code == 1009
    assert live.params.target("ablation.units") == ()
    # the server's thread logs the refusal as it closes: it may come just after the client sees the close
    wait_for(lambda: any("connection closed" in line for line in live.reporter.lines), 10, "the refusal logged")


@pytest.mark.realtime
def test_a_page_that_stops_reading_holds_up_nothing(live):
    """A stalled page (its socket never read) must not slow the others or the music."""
    import socket

    stalled = socket.create_connection(("127.0.0.1", live.server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{live.server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    try:
        notes = live.engine.notes_played
        with machine_jitter() as jitter:
            messages = asyncio.run(_messages(live.base + "/ws", 3.0, origin=live.base))
        given = 3.0 - jitter.stalled  # the seconds the machine gave us
        deltas = [m for m in messages if m["type"] == "delta"]
        # a stuck page would fill its 4 KiB socket within a second and, if it held the others up, stop them
        assert len(deltas) >= 8 * given, (len(deltas), str(jitter))  # the music changes something ~8 times a second
        assert live.engine.notes_played - notes >= 2 * given, str(jitter)  # 4 notes a second at 240 BPM
        assert live.engine.resyncs == 0 or jitter.max > LATE_RESYNC_S - live.engine.lookahead, str(jitter)
    finally:
        stalled.close()


def test_the_notes_a_control_changed_and_the_units_an_ablation_cuts_reach_the_pages(live):
    def seen(messages):  # the cut shown, the changed note and three notes after it
        notes = [n for m in messages for n in m.get("notes", ())]
        changed = [i for i, n in enumerate(notes) if "ch" in n]
        return any("ablation" in m for m in messages[2:]) and changed and len(notes) >= changed[0] + 4

    async def run():
        watcher = asyncio.ensure_future(_messages(live.base + "/ws", 20.0, origin=live.base, until=seen))
        await _waited(lambda: live.server.clients, "the watching page connected")
        await _messages(live.base + "/ws", 0.3, origin=live.base,
                        send=[{"op": "set", "name": "ablation.depth", "value": 0.5}])
        return await watcher

    messages = asyncio.run(run())
    cut = [m["ablation"] for m in messages if "ablation" in m]
    assert cut and cut[-1]["layer"] == 3 and len(cut[-1]["units"]) == 16 and cut[-1]["mode"] == "output"  # half of 32
    notes = [n for m in messages for n in m.get("notes", ())]
    changed = [n for n in notes if "ch" in n]
    assert changed and changed[0]["ch"] == ["ablation.depth (web)"]
    assert sum("ch" in n for n in notes) == 1  # only the first note sampled after the change


def test_user_mistakes_are_one_line_and_exit_2(tmp_path):
    for args, words in ((("view", str(tmp_path / "missing.mid")), "no such take"),
                        (("view", str(tmp_path / "take.wav")), ".mid file or the .abc"),
                        (("play", "--web", "localhost:http", "--bars", "1", "--no-audio", "--midi-out", "none"), "[HOST:]PORT")):
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
