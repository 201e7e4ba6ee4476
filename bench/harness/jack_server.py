"""JACK dummy servers of our own: started, stopped, restarted, listed, run at real-time priority."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

from instrument.midi.ports import jack_server_socket


@contextmanager
def realtime_jack_server(priority: int = 70) -> Iterator[None]:
    """Run the test JACK server's threads at real-time (FIFO) priority for a while, where allowed,
    then put them back. Started with ``--no-realtime``, on a busy machine it runs cycles late,
    and a client can miss a cycle and lose its messages (seen here at about 1 in 1000, even by
    jack_midi_dump); a real-time server, as musicians run, does not."""
    saved = {}
    try:
        pid = _jack_server_pid()
        for tid in os.listdir(f"/proc/{pid}/task"):
            saved[int(tid)] = (os.sched_getscheduler(int(tid)), os.sched_getparam(int(tid)))
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
    except OSError:
        pass  # no permission, or no such server: as it is
    try:
        yield
    finally:
        for tid, (policy, param) in saved.items():
            try:
                os.sched_setscheduler(tid, policy, param)
            except OSError:
                pass


def start_jack(name: str, frames: int = 32, realtime: bool = False) -> subprocess.Popen:
    """A JACK dummy server of our own under ``name``, ``frames`` per period at 48 kHz (for tests
    that stop and restart it, or need another period). ``realtime``: real-time priority (-R) where
    allowed, as a performer's server runs (else, or where refused, without).

    Its output goes to a file, never a pipe: a server that reports many missed cycles on a busy
    machine fills a pipe nobody reads and then blocks in its write, every client with it."""
    command = ["-n", name, "-d", "dummy", "-r", "48000", "-p", str(frames)]
    for options in ([["-R", "-P", "70"]] if realtime else []) + [["--no-realtime"]]:
        log = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen(["jackd", *options, *command], stdout=log, stderr=subprocess.STDOUT)
        if _answers(name, proc, 10.0):
            log.close()  # the server keeps writing to the file, which the system frees with it
            return proc
        stop_jack(proc)  # SIGTERM first: a killed server leaves a stale entry in JACK's registry
        log.seek(0)
        why = log.read().strip().splitlines()[-3:]
        log.close()
    running = subprocess.run(["pgrep", "-c", "-x", "jackd"], capture_output=True, text=True).stdout.strip()
    raise AssertionError(f"could not start a JACK server {name!r} ({running} jackd already run here; "
                         f"JACK allows a few servers per machine): {why}")


def _answers(name: str, proc: subprocess.Popen, timeout: float) -> bool:
    """Whether the server ``proc`` answers under ``name`` within ``timeout`` (False at once if it ended)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:  # jack_wait's own wait, a second at a time
        if subprocess.run(["jack_wait", "-w", "-t", "1", "-s", name], capture_output=True).returncode == 0:
            return proc.poll() is None
    return False


def stop_jack(server: subprocess.Popen) -> None:
    """Stop a server from ``start_jack`` (idempotent)."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def jack_ports(server: str) -> str:
    """``jack_lsp`` of the server named ``server`` ('' when it does not answer: a jack_lsp that hangs
    on a server busy with a client coming or going is killed, and the caller asks again)."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
    try:
        return subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10).stdout
    except subprocess.TimeoutExpired:
        return ""


def connections(port: str) -> list[str]:
    """The ports connected to ``port`` on the test's JACK server (``jack_lsp -c``)."""
    lines = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    out, current = [], None
    for line in lines:
        if line.startswith((" ", "\t")):
            if current == port:
                out.append(line.strip())
        else:
            current = line.strip()
    return out


def _jack_server_pid() -> int:
    """The JACK server's process, from its socket's peer credentials."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(jack_server_socket())
        pid, _, _ = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid


def _threads() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}
