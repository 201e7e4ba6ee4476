"""Switching the playing model between tunes (``model.next``), with no gap in the music.

A performer may move from the session model to the songs model mid-set. Reading a checkpoint
and preparing its stepper takes a few hundred milliseconds, far longer than a note, so it never
happens on the model thread: when ``model.next`` changes, a loader thread reads the checkpoint,
builds its stepper and steps it once (the first step pays one-off costs), and the composer takes
the prepared stepper at the next tune boundary. Until it is ready the current model plays on.
Only models of the playing model's shape are taken (the activity taps, ablation unit numbers and
patches are per layer and unit), and only the names the performance was started with can be
asked for, so a controller can never make the instrument read an arbitrary file
(docs/design.md §10).

Memory: a model once prepared is kept, ready, when another takes over (the performance was started
with a few models at most), so switching back costs no reload and memory stays flat: loading and
freeing a model at each switch left tens of MB more resident each time (the C allocator keeps freed
memory for reuse; a soak that switched every 80 s grew 476 MB/h), and even handed back it came and
went with each switch. After a load, the loader's temporaries (the checkpoint as read, the float32
copy) are handed back to the system (``release_freed_memory``), on the loader's thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from instrument.errors import UsageError
from instrument.model import checkpoint
from instrument.model.network import FolkRNN

log = logging.getLogger(__name__)
_TRIM = None


def release_freed_memory() -> None:
    """Give memory the C allocator holds free back to the system (glibc's ``malloc_trim``; a no-op
    where there is none). Walks the allocator's arenas with the GIL released: call it off the
    model thread."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            _TRIM.argtypes, _TRIM.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


@dataclass(frozen=True)
class Prepared:
    """A model ready to play: what ``prepare`` made of it (the composer's stepper and unit
    orders, warmed up and read from disk), by name."""

    name: str
    parts: Any


class ModelSwitch:
    """Prepares the model ``model.next`` names in the background; the composer takes it."""

    def __init__(self, current: str, paths: dict[str, str], shape: tuple[int, int, int],
                 prepare: Callable[[FolkRNN, str], Any]):
        self.current = current  # the name of the model playing now
        self.paths = dict(paths)  # every name that may be asked for -> its checkpoint
        self.shape = shape  # (vocabulary, layers, hidden) of the playing model
        self._prepare = prepare
        self._ready: Prepared | None = None
        self._kept: dict[str, Prepared] = {}  # models prepared before and not playing now, by name
        self._loading: str | None = None
        self._lock = threading.Lock()  # loader bookkeeping only; the model thread never waits on it
        self.failed: dict[str, str] = {}  # name -> why it cannot be played
        self.since_tune = 1  # the number of the first tune the current model wrote

    def request(self, name: str) -> None:
        """Start preparing ``name`` (from a controller's thread); returns at once."""
        with self._lock:
            if name == self.current or name in self.failed or self._loading == name:
                return
            if self._ready is not None and self._ready.name == name:
                return
            if name in self._kept:  # prepared before: ready at once
                self._keep(self._ready)
                self._ready = self._kept.pop(name)
                return
            self._loading = name
        threading.Thread(target=self._load, args=(name,), name=f"load {name}", daemon=True).start()

    def _keep(self, prepared: Prepared | None) -> None:
        if prepared is not None:
            self._kept[prepared.name] = prepared

    def take(self, name: str, tune: int, playing: Any = None) -> Prepared | None:
        """The prepared model if it is ``name``, to write tune number ``tune`` on (called by the
        model thread at a tune boundary; never blocks). None while it is still loading or when
        ``name`` is the current model. ``playing``: the parts of the model playing until now,
        kept ready for a switch back."""
        ready = self._ready
        if name == self.current or ready is None or ready.name != name:
            return None
        self._ready = None
        if playing is not None:
            self._kept[self.current] = Prepared(self.current, playing)
        self.current, self.since_tune = name, tune
        log.info("the %s model writes from tune %d on", name, tune)
        return ready

    def _load(self, name: str) -> None:
        try:
            path = self.paths.get(name)
            if path is None:
                raise UsageError(f"model.next {name!r} was not named when the performance started")
            model, _ = checkpoint.load(path)
            shape = (model.config.vocab_size, model.config.layers, model.config.hidden)
            if shape != self.shape:
                raise UsageError(f"{path} is a {shape[1]} x {shape[2]} model; the playing one is "
                                 f"{self.shape[1]} x {self.shape[2]}: switch only between models of one shape")
            prepared = Prepared(name, self._prepare(model, path))
        except UsageError as error:
            self.failed[name] = str(error)
            log.warning("cannot switch to %s: %s", name, error)
            prepared = None
        except Exception as error:  # a broken file must not stop the music
            self.failed[name] = f"{type(error).__name__}: {error}"
            log.exception("cannot switch to %s", name)
            prepared = None
        with self._lock:
            if prepared is not None:
                self._keep(self._ready)  # one asked for before and not taken yet stays ready too
                self._ready = prepared
            if self._loading == name:
                self._loading = None
        release_freed_memory()  # what loading it left: the checkpoint as read, the float32 copy
