"""The live loop's timing, measured: onset error, control-to-token latency and CPU use.

For each tempo (120 BPM and faster ones, up to the fastest this machine sustains) and with and
without a flood of OSC messages (another process sends 2,000 a second to the instrument's OSC
server), the real engine plays the model for a while:

- onset error: when the timing thread sent each MIDI message minus when it was due (the
  ``Scheduler``'s own record), p50/p99/max;
- control-to-token latency: a parameter is set at random moments through the parameter
  registry; latency is the time from the set to the first token sampled with it, p50/p99;
- CPU: this process's CPU time over wall time (100% = one core), and the flood's;
- late notes: how often the model fell behind (the engine moved its timeline on).

The MIDI goes to a JACK port when a JACK server runs (``JACK_DEFAULT_SERVER``), else the
timing thread runs the same actions without a port. Example:

    python bench/realtime.py [--model PATH] [--seconds 20] [--tempos 120,200,320] [--json]

With ``--ensemble trio`` (or any ensemble) every run is made twice in a row, the lead alone
(``solo``) and the ensemble (its network voices in one batched step, its chords one beat group
ahead, every voice on its own channel of the JACK port), and both lines are printed: onset p99
(the target: <= 1 ms) and late notes (no more than the solo's) of the band beside the solo's:

    python bench/realtime.py --ensemble trio [--tempos 120] [--seconds 20]

With ``--web-clients N`` it measures the web page instead of the OSC flood, at the first tempo:
without the page's server (the baseline), with the server and no browser, and with N browsers
(headless chromium pages, or with ``--web-client socket`` WebSocket clients that read every
update) showing the live page. Beside onset error and control-to-token latency it reports the
page-change latency: a probe page (another process) sets a parameter over its WebSocket and
asks ``/state`` over OSC until the value is there (p50/p99; the target is 20 ms p99), and the
server's own cost per update (poll and encode) and its update rate (at most 30 a second):

    python bench/realtime.py --web-clients 3 [--web-client browser|socket] [--seconds 20]

With ``--sync link`` it plays twice through ``run.py play`` to a JACK listener, at the first tempo
in 4/4: free-running, and in an Ableton Link session with a test peer of its own, and prints the
phase error of the Link run's notes against the peer's beat grid (p50, p99) beside the free run's
onset error against its own grid, the same measure. Link announces itself on every network
interface, so this re-runs itself inside a network namespace that holds only loopback
(``unshare -n``, as root) with a JACK dummy server of its own, and refuses to run elsewhere:

    python bench/realtime.py --sync link [--tempos 132] [--seconds 20]

With ``--listen`` it measures listening (docs/design.md §13), at the first tempo in 4/4: the
input-to-token latency (from a musician's note-on to the moment its pitch token is written, the
transcriber polled as the live listener polls it, with the key given and with the key found from
the notes), and, through ``run.py play --listen answer`` on JACK with a simulated musician on its
MIDI in, the answer's start delay (from the bar line that ends each call to the answer's first
note at an independent listener; the design puts it one beat after); and through ``run.py play
--listen along`` (the musician plays the reel twice, key given), how far each of the follower's
note-ons at one listener lies from a beat after the musician's note-on at another listener on the
musician's own port (the design puts it exactly one beat after), beside that bare hop's own latency
(the musician's send to that listener) measured in the same run, and the notes followed:

    python bench/realtime.py --listen [--tempos 120] [--calls 6]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from instrument.model import checkpoint  # noqa: E402
from instrument.live.composer import Composer  # noqa: E402
from instrument.live.engine import Engine, Limits  # noqa: E402
from instrument.music.phrasing import ScheduledNote  # noqa: E402
from instrument.live.params import Parameters  # noqa: E402
from instrument.timing import Scheduler, clock  # noqa: E402
from bench.harness.floods import osc_flood  # noqa: E402
from bench.harness.net import free_udp_port  # noqa: E402


class NullMidi:
    """An output that sends nothing but runs its note-on/off actions on the timing thread, as
    the MIDI port does, so the onset errors measure the same path."""

    name = "null"

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler
        self.sent = 0

    def start(self, at: float) -> None:
        pass

    def schedule(self, note: ScheduledNote) -> None:
        self.scheduler.at(note.on, self._send)
        self.scheduler.at(note.off, self._send)

    def _send(self, due: float) -> None:
        self.sent += 1

    def tune(self, number, tune) -> None:
        pass

    def panic(self, at: float) -> None:
        self.scheduler.clear()

    def close(self, at: float) -> None:
        pass

    def status(self) -> str:
        return "null"


class Onsets:
    """An output that keeps the notes' scheduled onsets (to know which note was sounding when)."""

    name = "onsets"

    def __init__(self):
        self.on: list[float] = []

    def start(self, at: float) -> None:
        pass

    def schedule(self, note: ScheduledNote) -> None:
        self.on.append(note.on)

    def tune(self, number, tune) -> None:
        pass

    def panic(self, at: float) -> None:
        pass

    def close(self, at: float) -> None:
        pass

    def status(self) -> str:
        return "onsets"


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    a = np.asarray(values) * scale
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max()), "n": len(a)}


def open_osc(params: Parameters, port: int):
    """The instrument's own OSC server (the controllers' one), or None if it is not there."""
    try:
        from controllers.rig import Controllers, add_controller_arguments
    except ImportError:
        return None
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    args = parser.parse_args(["--osc-port", str(port), "--no-myo", "--midi-in", "none"])
    return Controllers.open(params, args)


PROBE = r"""
import asyncio, json, random, socket, sys, time
import aiohttp
from pythonosc.osc_message_builder import OscMessageBuilder
url, osc_port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sock.bind(("127.0.0.1", 0)); sock.setblocking(False)
ask = OscMessageBuilder("/state").build().dgram
def state():
    sock.sendto(ask, ("127.0.0.1", osc_port))
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            time.sleep(0.0002); continue
        return json.loads(data[data.index(b",s\x00\x00") + 4:].split(b"\x00")[0])
    return None
async def main():
    out, rng = [], random.Random(5)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, origin=url.replace("ws://", "http://").rsplit("/ws", 1)[0]) as ws:
            async def read():
                async for _ in ws: pass
            reader = asyncio.ensure_future(read())
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                await asyncio.sleep(rng.uniform(0.05, 0.25))
                value = round(rng.uniform(0.05, 0.95), 4)
                t0 = time.perf_counter()
                await ws.send_str(json.dumps({"op": "set", "name": "accent", "value": value}))
                while True:
                    s = await asyncio.get_running_loop().run_in_executor(None, state)
                    if s is not None and s["accent"] == value:
                        out.append(time.perf_counter() - t0); break
                    if time.perf_counter() - t0 > 2: break
            reader.cancel()
    print(json.dumps(out))
asyncio.run(main())
"""

READER = r"""
import asyncio, sys, aiohttp
async def page(url):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, origin=url.replace("ws://", "http://").rsplit("/ws", 1)[0]) as ws:
            async for message in ws: message.json()
async def main():
    await asyncio.gather(*(page(sys.argv[1]) for _ in range(int(sys.argv[2]))))
asyncio.run(main())
"""


class WebPages:
    """The page's server on a running engine, with ``clients`` pages showing it."""

    def __init__(self, params: Parameters, composer: Composer, engine: Engine, scheduler: Scheduler, controllers,
                 model, clients: int, kind: str, seconds: float):
        from controllers.web import WebControl, pad_labels
        from instrument.analysis.taps import ActivityTap
        from instrument.web.live import LiveSource
        from instrument.web.server import WebServer

        tap = ActivityTap(model.config.layers, model.config.hidden, every=2, units=True)  # as play has it with the page
        composer.tap = tap
        performance = SimpleNamespace(params=params, composer=composer, engine=engine, scheduler=scheduler)
        self.source = LiveSource(performance, tap.subscribe(64), status=controllers.status,
                                 pads=lambda: pad_labels(controllers.router), layers=model.config.layers,
                                 hidden=model.config.hidden)
        self.server = WebServer(self.source, WebControl(params, controllers.router), "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.server.port}/"
        self.kind, self.browsers, self.readers = kind, [], None
        if clients and kind == "browser":
            from bench.harness.browser import open_browser

            for _ in range(clients):
                driver = open_browser()
                driver.get(self.url)
                self.browsers.append(driver)
        elif clients:
            self.readers = subprocess.Popen([sys.executable, "-c", READER, self.url + "ws", str(clients)])
        self.probe = None

    def start_probe(self, osc_port: int, seconds: float, expected: int) -> None:
        self.probe = subprocess.Popen([sys.executable, "-c", PROBE, self.url + "ws", str(osc_port), str(seconds)],
                                      stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while len(self.server.clients) < expected + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pages = len(self.server.clients) - 1  # connected besides the probe
        self.started = time.perf_counter()

    def close(self) -> dict:
        latencies = json.loads(self.probe.communicate(timeout=60)[0] or "[]") if self.probe else []
        frames, elapsed = self.server.frames, time.perf_counter() - self.started
        for driver in self.browsers:
            driver.quit()
        if self.readers is not None:
            self.readers.terminate()
            self.readers.wait(10)
        poll = list(self.server.poll_us)
        self.server.close()
        self.source.close()
        return {"pages": self.pages, "page_change_to_state_ms": percentiles(latencies),
                "server_update_us": percentiles(poll, scale=1.0), "updates_per_s": frames / elapsed}


def run(model, tempo: float, seconds: float, flood_rate: float, use_jack: bool, seed: int,
        web: tuple[int, str] | None = None, repeats: str = "play", ensemble=None) -> dict:
    from instrument.cli.options import ensemble_params
    from instrument.live.ensemble import SOLO
    from instrument.live.params import INSTRUMENT_PARAMS
    from instrument.live.performance import phrasing_for, voice_sounds

    ensemble = ensemble or SOLO
    params = ensemble_params(INSTRUMENT_PARAMS, ensemble)
    params.set("repeats", repeats)
    params.set("tempo", tempo, smoothing_ms=0)
    params.set("meter.next", "4/4")
    port = free_udp_port()
    controllers = open_osc(params, port)
    scheduler = Scheduler()
    sounds = voice_sounds(ensemble, params)
    if use_jack:
        from instrument.outputs.midi_port import open_midi_port

        out = open_midi_port("virtual", "jack", scheduler, program=0, voices=sounds if len(sounds) > 1 else ())
    else:
        out = NullMidi(scheduler)
    composer = Composer(model, params, seed=seed, ensemble=ensemble)
    onsets = Onsets()
    engine = Engine(composer, params, [out, onsets], scheduler, Limits(seconds=seconds), phrasing_for(params, ensemble))
    pages = WebPages(params, composer, engine, scheduler, controllers, model, web[0], web[1], seconds) if web else None
    if pages is not None:
        time.sleep(3.0)  # the pages load and draw their first state before the clock starts
        pages.start_probe(port, seconds, web[0])
    flood = None
    if flood_rate:
        flood = osc_flood(port, flood_rate, seconds + 1)
    sets: list[tuple[int, float]] = []
    rng = random.Random(seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    engine.start()
    while not engine.finished.wait(rng.uniform(0.05, 0.25)):
        before = clock()
        params.set("temperature", rng.uniform(0.8, 1.2), source="bench", smoothing_ms=0)
        sets.append((params.version, before))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    flood_line = None
    if flood is not None:
        out_text, _ = flood.communicate(timeout=30)
        sent, flood_cpu = out_text.split()
        flood_line = {"sent": int(sent), "rate_per_s": int(sent) / (seconds + 1), "cpu_percent": 100 * float(flood_cpu) / (seconds + 1)}
    web_line = pages.close() if pages is not None else None
    if controllers is not None:
        controllers.close()
    applied = list(composer.applied)
    latencies, excess = [], []
    on = sorted(onsets.on)
    for version, at in sets:
        first = next((t for v, t in applied if v >= version), None)
        if first is None:
            continue
        latencies.append(first - at)
        # the note sounding when the control moved: its length bounds the control latency (docs/design.md §5)
        i = int(np.searchsorted(on, at, side="right"))
        if 0 < i < len(on):
            excess.append((first - at) - (on[i] - on[i - 1]))
    notes = max(engine.notes_played, 1)
    note_s = wall / notes
    if use_jack:
        out.close(clock())
    return {
        "ensemble": ensemble.name, "voices": len(ensemble.voices),
        "tempo": tempo, "repeats": repeats, "flood": bool(flood_rate), "osc_server": controllers is not None, "midi": out.status() if use_jack else "null",
        "onset_ms": percentiles(list(scheduler.errors)),
        "control_to_token_ms": percentiles(latencies),
        "control_minus_note_ms": percentiles(excess),  # latency minus the sounding note's length: <= 2 ms is the target
        "mean_note_ms": 1000 * note_s,
        "cpu_percent": 100 * cpu / wall,
        "notes": engine.notes_played, "resyncs": engine.resyncs, "flood_sender": flood_line,
        # composed after their time (the model thread held up): they sound late, at the time they
        # were handed over, which the onset error (sent minus that time) no longer shows
        "late_notes": engine.late_notes,
        "web": web_line,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="checkpoint (default: the shipped model)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--tempos", default="120,200,320", help="BPM list; the first is the reference (default 120,200,320)")
    ap.add_argument("--flood", type=float, default=2000.0, help="OSC messages per second in the flood runs")
    ap.add_argument("--no-jack", action="store_true", help="do not use a JACK MIDI port even when a server runs")
    ap.add_argument("--repeats", default="play,skip",
                    help="the 'repeats' parameter of each run: play (repeated sections replayed from notes already "
                         "composed) and/or skip (every note newly composed) (default both)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--web-clients", type=int, metavar="N",
                    help="measure the web page (no flood): without its server, with it and no page, with N pages")
    ap.add_argument("--web-client", choices=("browser", "socket"), default="browser",
                    help="the pages: headless chromium (default, where installed) or WebSocket clients")
    ap.add_argument("--ensemble", metavar="duo|trio|pipes|FILE.yaml",
                    help="run each case with the lead alone and with this ensemble, one after the other")
    ap.add_argument("--sync", choices=("link",), help="link: phase error in a Link session beside free running")
    ap.add_argument("--listen", action="store_true", help="listening: input-to-token latency and the answer's start delay")
    ap.add_argument("--calls", type=int, default=6, help="with --listen: the calls the simulated musician plays")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.sync == "link":
        return link_main(args)
    if args.listen:
        return listen_main(args)
    model, _, where = checkpoint.load_or_default(args.model)
    use_jack = False
    if not args.no_jack:
        from instrument.midi.ports import midi_available

        ok, api = midi_available()
        use_jack = ok and api == "JACK"
    if args.web_clients is not None:
        return web_main(args, model, where, use_jack)
    results = []
    floods = (0.0, args.flood) if args.flood else (0.0,)
    bands = [None]
    if args.ensemble:
        from controllers.patch import find_ensemble

        bands = [None, find_ensemble(args.ensemble)]
    for tempo, flood, repeats in itertools.product([float(t) for t in args.tempos.split(",")], floods, args.repeats.split(",")):
      for band in bands:
        r = run(model, tempo, args.seconds, flood, use_jack, args.seed, repeats=repeats, ensemble=band)
        results.append(r)
        if not args.json:
            o, c = r["onset_ms"], r["control_to_token_ms"]
            who = f"{r['ensemble']:>6} " if args.ensemble else ""
            print(f"{who}{tempo:5.0f} BPM {'flood ' + str(int(flood)) + '/s' if flood else 'no flood':>15} repeats {repeats:4s}: onset p50 {o['p50']:.3f} "
                  f"p99 {o['p99']:.3f} max {o['max']:.3f} ms ({o['n']} msgs) | control->token p50 {c['p50']:.2f} "
                  f"p99 {c['p99']:.2f} ms, minus the sounding note's length p99 {r['control_minus_note_ms']['p99']:.2f} ms | cpu {r['cpu_percent']:.0f}% "
                  f"| resyncs {r['resyncs']}, late notes {r['late_notes']}" + (f" | flood sent {r['flood_sender']['sent']}, its cpu {r['flood_sender']['cpu_percent']:.0f}%" if flood else ""),
                  flush=True)
    if args.ensemble:
        return _band_report(args, results, where, use_jack)
    ok = {}
    for r in results:  # a tempo is sustained when every run at it (with and without flood) kept time
        ok[r["tempo"]] = ok.get(r["tempo"], True) and r["resyncs"] == 0 and r["late_notes"] == 0 and r["onset_ms"]["p99"] <= 1.0
    sustained = [tempo for tempo, good in ok.items() if good]
    summary = dict(_about(where, use_jack), fastest_sustained_bpm=max(sustained) if sustained else None, runs=results)
    return _report(args, summary, f"fastest tempo sustained (no late notes, onset p99 <= 1 ms, with and without flood): "
                                  f"{summary['fastest_sustained_bpm']} BPM; model {where}; MIDI {summary['midi']}")


def _band_report(args, results: list[dict], where: str, use_jack: bool) -> int:
    """The ensemble's runs beside the solo's made just before them: onset p99 and late notes."""
    pairs = []
    for solo, band in zip(results[::2], results[1::2]):
        pairs.append({"tempo": band["tempo"], "flood": band["flood"], "repeats": band["repeats"],
                      "solo_onset_p99_ms": solo["onset_ms"]["p99"], "band_onset_p99_ms": band["onset_ms"]["p99"],
                      "solo_late_notes": solo["late_notes"], "band_late_notes": band["late_notes"],
                      "met": band["onset_ms"]["p99"] <= 1.0 and band["late_notes"] <= solo["late_notes"]})
    summary = dict(_about(where, use_jack), ensemble=args.ensemble, pairs=pairs, runs=results)
    met = all(p["met"] for p in pairs)
    worst = max(p["band_onset_p99_ms"] for p in pairs)
    return _report(args, summary, f"{args.ensemble}: onset p99 <= 1 ms and late notes no more than solo's in every run: "
                                  f"{'yes' if met else 'NO'} (worst band onset p99 {worst:.3f} ms); model {where}; MIDI {summary['midi']}")


def _about(where: str, use_jack: bool) -> dict:
    return {"model": where, "machine": f"{os.cpu_count()} cores", "midi": "JACK" if use_jack else "null (no JACK server)"}


def _report(args, summary: dict, line: str) -> int:
    print(json.dumps(summary, indent=1) if args.json else line)
    return 0


def web_main(args, model, where: str, use_jack: bool) -> int:
    """Onset error, control-to-token and page-change latency without the page, with it and no
    browser, and with ``--web-clients`` browsers (see the module docstring)."""
    kind = args.web_client
    if kind == "browser":
        try:
            from bench.harness.browser import BrowserMissing, chromium_paths

            chromium_paths()
        except BrowserMissing as error:
            print(f"no headless chromium here ({error}); using WebSocket clients", file=sys.stderr)
            kind = "socket"
    tempo = float(args.tempos.split(",")[0])
    cases = [("no web server", None), ("web, no page", (0, kind)), (f"web, {args.web_clients} {kind} pages", (args.web_clients, kind))]
    results = []
    for label, web in cases:
        r = run(model, tempo, args.seconds, 0.0, use_jack, args.seed, web)
        r["case"] = label
        results.append(r)
        if not args.json:
            o, c, w = r["onset_ms"], r["control_to_token_ms"], r["web"]
            line = (f"{label:>24}: onset p50 {o['p50']:.3f} p99 {o['p99']:.3f} max {o['max']:.3f} ms | control->token p50 "
                    f"{c['p50']:.2f} p99 {c['p99']:.2f} ms, minus the sounding note p99 {r['control_minus_note_ms']['p99']:.2f} ms "
                    f"| cpu {r['cpu_percent']:.0f}% | late notes {r['late_notes']}, resyncs {r['resyncs']}")
            if w:
                p, u = w["page_change_to_state_ms"], w["server_update_us"]
                line += (f" | page change -> /state p50 {p['p50']:.2f} p99 {p['p99']:.2f} ms ({p['n']}) | server update "
                         f"p50 {u['p50']:.0f} p99 {u['p99']:.0f} us, {w['updates_per_s']:.1f}/s to {w['pages']} pages")
            print(line, flush=True)
    base = results[0]["onset_ms"]["p99"]
    ratio = results[-1]["onset_ms"]["p99"] / base if base else float("nan")
    summary = dict(_about(where, use_jack), tempo=tempo, clients=kind, runs=results, onset_p99_ratio_with_pages=ratio)
    return _report(args, summary, f"onset p99 with {args.web_clients} pages / without the page: {ratio:.2f}; "
                                  f"model {where}; MIDI {summary['midi']}; {tempo:.0f} BPM")



def link_main(args) -> int:
    """Phase error against a Link peer beside the free-running onset error (module docstring)."""
    from bench.harness.jack_server import start_jack
    from bench.harness.link import ISOLATED_ENV, LinkPeer, assert_loopback_only, grid_error_ms, isolated, peer_beat
    from bench.harness.midi import Receiver
    from instrument.midi.messages import NOTE_ON

    if os.environ.get(ISOLATED_ENV) != "1":  # once more, inside a loopback-only namespace
        env = dict(os.environ, **{ISOLATED_ENV: "1"})
        return subprocess.run(isolated([sys.executable, *sys.argv]), env=env).returncode
    assert_loopback_only()
    tempo = float(args.tempos.split(",")[0])
    server = f"bench-link-{os.getpid()}"
    jack = start_jack(server)
    os.environ["JACK_DEFAULT_SERVER"] = server
    peer = LinkPeer(tempo, quantum=4.0)
    receiver = Receiver("bench-link-listener", "in")
    runs = {}
    try:
        for sync in ("off", "link"):
            command = [sys.executable, os.path.join(os.path.dirname(__file__), "..", "run.py"), "play", "--quiet",
                       "--no-osc", "--no-myo", "--no-web", "--midi-in", "none", "--no-audio", "--midi-out", "virtual",
                       "--midi-api", "jack", "--sync", sync, "--tempo", str(tempo), "--meter", "4/4",
                       "--seconds", str(args.seconds), "--seed", str(args.seed), "--set", "swing=0"]
            if args.model:
                command += ["--model", args.model]
            begun = len(receiver.messages)
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            receiver.listen_to_play(proc)
            _, err = proc.communicate(timeout=args.seconds + 60)
            onsets = [t for t, m in receiver.messages[begun:] if m[0] & 0xF0 == NOTE_ON and m[2] > 0]
            if sync == "link":
                errors = [grid_error_ms(*peer_beat(peer.readings, t)) for t in onsets]
            else:  # its own grid: the tempo it keeps, from its first note
                errors = [grid_error_ms((t - onsets[0]) * tempo / 60.0, tempo) for t in onsets] if onsets else []
            runs[sync] = {"notes": len(onsets), "error_ms": percentiles(errors, scale=1.0), "summary": err.strip().splitlines()[-1:]}
    finally:
        receiver.close()
        peer.close()
        jack.terminate()
        jack.wait(10)
    free, link = runs["off"]["error_ms"], runs["link"]["error_ms"]
    summary = {"machine": f"{os.cpu_count()} cores", "tempo": tempo, "seconds": args.seconds, "runs": runs}
    return _report(args, summary, f"{tempo:.0f} BPM, 4/4, {args.seconds:g} s each: Link phase error against the peer "
                                  f"p50 {link['p50']:.3f} p99 {link['p99']:.3f} max {link['max']:.3f} ms "
                                  f"({runs['link']['notes']} notes) | free-running onset error against its own grid "
                                  f"p50 {free['p50']:.3f} p99 {free['p99']:.3f} max {free['max']:.3f} ms "
                                  f"({runs['off']['notes']} notes)")


def token_latencies(bpm: float, key: tuple[int, str] | None, poll_s: float = 0.005) -> list[float]:
    """Seconds from each note-on to its pitch token, a tune played in real time into a transcriber
    polled every ``poll_s`` (as instrument/live/listen.py polls it)."""
    from instrument.live.listen import KEY_BARS, KEY_GIVEN_BEATS
    from instrument.music.transcribe import Transcriber
    from bench.harness.musician import REEL as TUNE, perform

    played = perform(TUNE, bpm, seed=1, transpose=2, start_s=0.0)
    t0 = clock() + 0.5
    transcriber = Transcriber("4/4", bpm, t0 + played.origin_s, key=key,
                              listen_bars=KEY_GIVEN_BEATS / 4 if key else KEY_BARS)  # as the listener asks in 4/4
    onsets = [t0 + n.on for n in played.notes if not n.grace]
    events = sorted((t0 + t, kind, pitch, velocity) for t, kind, pitch, velocity in played.events())
    written: list[float] = []  # when each pitch token came out
    for t, kind, pitch, velocity in events + [(events[-1][0] + 2.0, "end", 0, 0)]:
        while clock() < t:
            time.sleep(poll_s)  # the listening thread's poll
            tokens = transcriber.advance(clock())
            written += [clock() for tok in tokens if tok[-1:].isalpha() and not tok.startswith(("M:", "K:"))]
        tokens = (transcriber.note_on(t, pitch, velocity) if kind == "on" else transcriber.note_off(t, pitch)
                  if kind == "off" else transcriber.finish(t))
        written += [clock() for tok in tokens if tok[-1:].isalpha() and not tok.startswith(("M:", "K:"))]
    return [w - on for w, on in zip(written, onsets)]


def listen_main(args) -> int:
    """Input-to-token latency and the answer's start delay (module docstring)."""
    import tempfile

    from bench.harness.midi import Receiver
    from instrument.midi.messages import NOTE_ON
    from instrument.music.tunes import Tune
    from bench.harness.musician import REEL as TUNE, MidiMusician, perform

    bpm = float(args.tempos.split(",")[0])
    given, found = token_latencies(bpm, (2, "maj")), token_latencies(bpm, None)
    bar_s = 4 * 60.0 / bpm
    meter = XrunMeter()
    time.sleep(IDLE_XRUNS_S)  # the server's own xruns with nothing of ours running: the baseline
    idle = meter.rate()
    musician, receiver = MidiMusician("bench-musician"), Receiver("bench-listen-ear", "in")
    delays = []
    with tempfile.TemporaryDirectory() as tmp:
        proc = _listening("bench-musician", "answer", bpm, args.seed, 20 + args.calls * 6 * bar_s, tmp)
        try:
            start = _clock_start(receiver, proc)
            ends = []
            for call in range(args.calls):
                first_bar = 2 + call * 6  # a two-bar call, its answer, a bar to breathe
                body = TUNE.body[:20] if call == 0 else TUNE.body[2 + 18 * (call % 2): 2 + 18 * (call % 2 + 1)]
                played = perform(Tune("4/4", "maj", body), bpm, seed=call, transpose=2, start_s=0.0)
                shift = start + first_bar * bar_s - played.origin_s
                musician.play([(t + shift, k, p, v) for t, k, p, v in played.events()])
                ends.append(start + (first_bar + 2) * bar_s)
            time.sleep(3 * bar_s)  # the last answer
        finally:
            answer_err, answer_xruns = _stopped(proc, meter, receiver, musician)
        ons = [t for t, m in receiver.of(NOTE_ON) if m[2] > 0]
        for end in ends:
            answer = [t for t in ons if t >= end]
            if answer:
                delays.append(answer[0] - end)
    answer_late = answer_err.count("after its time") + answer_err.count("timeline moved on")
    along = along_lags(args, bpm, meter)
    meter.close()
    a, b, d = percentiles(given), percentiles(found), percentiles(delays)
    f, bare = percentiles(along["offsets"]), percentiles(along["bare"])
    summary = {"machine": f"{os.cpu_count()} cores", "tempo": bpm, "token_latency_key_given_ms": a,
               "token_latency_key_found_ms": b, "answer_start_delay_ms": d, "beat_ms": 60_000.0 / bpm,
               "along_offset_from_a_beat_ms": f, "bare_hop_ms": bare, "along_followed": along["followed"],
               "along_musician_notes": along["theirs"], "along_late_notes": along["late"], "answer_late_notes": answer_late,
               "xruns_a_minute": {"idle": idle, "answer": answer_xruns, "along": along["xruns_a_minute"]}}
    return _report(args, summary, f"{bpm:.0f} BPM: input-to-token latency p50 {a['p50']:.0f} p99 {a['p99']:.0f} ms "
                                  f"with the key given ({a['n']} notes), p50 {b['p50']:.0f} p99 {b['p99']:.0f} ms "
                                  f"with the key found from the first bars | answer start delay after the call's "
                                  f"last bar line p50 {d['p50']:.1f} p99 {d['p99']:.1f} ms ({d['n']} of {args.calls} "
                                  f"calls answered, {answer_late} notes late, {answer_xruns:.0f} xruns a minute at a bare "
                                  f"client; one beat is {60_000.0 / bpm:.0f} ms) | along: each note-on "
                                  f"{f['p50']:+.2f} ms (p50), {f['p99']:+.2f} ms (p99) from a beat after the "
                                  f"musician's, {along['followed']} of their {along['theirs']} notes followed, "
                                  f"{along['late']} late, {along['xruns_a_minute']:.0f} xruns a minute; the bare hop to a "
                                  f"listener p50 {bare['p50']:.2f} p99 {bare['p99']:.2f} ms | the server idle: {idle:.0f} "
                                  f"xruns a minute")


IDLE_XRUNS_S = 10.0  # the idle stretch before the runs, whose xruns are the baseline


def _listening(musician: str, mode: str, bpm: float, seed: int, seconds: float, cwd: str, *extra: str) -> subprocess.Popen:
    """``run.py play --listen mode`` in 4/4 with ``musician``'s JACK port on its MIDI in, its MIDI
    clock on its virtual output."""
    command = [sys.executable, os.path.join(os.path.dirname(__file__), "..", "run.py"), "play", "--quiet", "--no-web",
               "--no-myo", "--no-osc", "--midi-in", musician, "--midi-api", "jack", "--midi-out", "virtual",
               "--send-clock", "--no-audio", "--listen", mode, "--meter", "4/4", "--tempo", str(bpm), "--seed", str(seed),
               "--seconds", str(seconds), *extra]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stopped(proc: subprocess.Popen, meter: "XrunMeter", *clients) -> tuple[str, float]:
    """SIGTERM to the instrument, then the JACK clients closed: what it said, and the xruns a
    minute since the meter was last read."""
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    xruns = meter.rate()
    for client in clients:
        client.close()
    return err, xruns


def _clock_start(receiver, proc: subprocess.Popen) -> float:
    """Connect ``receiver`` to the instrument's output; when its MIDI clock started (bar 0)."""
    from instrument.midi.messages import START

    receiver.listen_to_play(proc)
    while not receiver.of(START):
        time.sleep(0.02)  # polling for the clock's start
    return receiver.of(START)[0][0]


class XrunMeter:
    """A bare JACK client counting the server's xruns (as every client hears of them), read as a
    rate over each stretch since the last reading."""

    def __init__(self):
        from bench.harness.audio import JackRecorder

        self._client = JackRecorder("bench-xruns", record=False, server=os.environ.get("JACK_DEFAULT_SERVER"))
        self._count, self._since = 0, clock()

    def rate(self) -> float:
        """Xruns a minute since the last reading."""
        now, count = clock(), self._client.xruns
        rate = (count - self._count) * 60.0 / max(now - self._since, 1e-9)
        self._count, self._since = count, now
        return rate

    def close(self) -> None:
        self._client.close()


def along_lags(args, bpm: float, meter: XrunMeter) -> dict:
    """``run.py play --listen along`` with the musician playing the reel twice in D (key given):
    each follower note-on at one listener minus (the musician's nearest note-on at a listener on
    their own port, plus a beat); that bare hop's latency (send to listener); the counts."""
    import tempfile

    from bench.harness.midi import Receiver
    from instrument.midi.messages import NOTE_ON
    from instrument.music.tunes import Tune
    from bench.harness.musician import REEL as TUNE, MidiMusician, perform

    beat_s = 60.0 / bpm
    musician = MidiMusician("bench-leader")
    ear, bare = Receiver("bench-along-ear", "in"), Receiver("bench-bare-ear", "in")
    bare.listen_to("bench-leader:out")
    meter.rate()
    twice = Tune("4/4", "maj", TUNE.body + TUNE.body[1:])
    with tempfile.TemporaryDirectory() as tmp:
        proc = _listening("bench-leader", "along", bpm, args.seed, 120, tmp, "--set", "listen.key=D")
        try:
            start = _clock_start(ear, proc)
            played = perform(twice, bpm, seed=1, transpose=2, start_s=0.0)
            shift = start + 2 * 4 * beat_s - played.origin_s
            musician.play([(t + shift, k, p, v) for t, k, p, v in played.events()])
            time.sleep(3 * beat_s)  # the last notes followed
        finally:
            err, xruns = _stopped(proc, meter, ear, bare, musician)
    theirs = [t for t, m in bare.of(NOTE_ON) if m[2] > 0]
    ours = [t for t, m in ear.of(NOTE_ON) if m[2] > 0]
    sent = [t for t, kind, _ in musician.sent if kind == "on"]
    offsets = [min((t - s - beat_s for s in theirs), key=abs) for t in ours] if theirs else []
    hops = [min((h - s for h in theirs if h >= s - 0.001), default=float("nan")) for s in sent]
    return {"offsets": offsets, "bare": [h for h in hops if h == h], "followed": len(ours), "theirs": len(theirs),
            "late": err.count("after its time"), "xruns_a_minute": xruns}

if __name__ == "__main__":
    sys.exit(main())
