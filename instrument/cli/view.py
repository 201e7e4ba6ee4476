"""``run.py view take.mid``: the web page on a finished take (or the .abc beside it), with a time
slider, for listening back and for showing a performance after the fact. Serves until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

HELP = "the web page on a recorded take: sheet music, piano roll, time slider and playback"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("take", metavar="TAKE.mid|TAKE.abc", help="a take recorded by play --record (either file)")
    parser.add_argument("--web", metavar="[HOST:]PORT", help="where to serve the page (default 127.0.0.1:8765)")


def run(args: argparse.Namespace) -> int:
    from controllers.report import Reporter
    from controllers.web import WebControl
    from instrument.web.server import DEFAULT_PORT, DEFAULT_PORTS_TRIED, WebServer, parse_address
    from instrument.web.take import TakeSource

    source = TakeSource(args.take)
    host, port = parse_address(args.web) if args.web else ("127.0.0.1", DEFAULT_PORT)
    server = WebServer(source, WebControl(None, None, Reporter("Web")), host, port, token="",
                       try_next=0 if args.web else DEFAULT_PORTS_TRIED).start()
    print(f"{args.take}: {len(source.tunes)} tunes, {len(source.notes)} notes, {source.duration:.0f} s", file=sys.stderr)
    print(f"web page: {server.url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda s, f: done.set())
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
