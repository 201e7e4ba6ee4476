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
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from instrument.errors import UsageError
from instrument.model import checkpoint
from instrument.model.network import FolkRNN

log = logging.getLogger(__name__)


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
            self._loading = name
        threading.Thread(target=self._load, args=(name,), name=f"load {name}", daemon=True).start()

    def take(self, name: str, tune: int) -> Prepared | None:
        """The prepared model if it is ``name``, to write tune number ``tune`` on (called by the
        model thread at a tune boundary; never blocks). None while it is still loading or when
        ``name`` is the current model."""
        ready = self._ready
        if name == self.current or ready is None or ready.name != name:
            return None
        self._ready = None
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
                self._ready = prepared
            if self._loading == name:
                self._loading = None
