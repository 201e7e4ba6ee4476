"""Training with the folk-rnn v2 recipe (docs/design.md §1), resumable and interruptible.

Recipe: batches of 64 tunes of similar length, loss = NLL summed over each tune's tokens and
averaged over the batch, RMSprop (lr 0.003, Lasagne's rho 0.9 and epsilon 1e-6), dropout 0.5
after every LSTM layer, forget-gate bias 5, orthogonal recurrence, gradient clipping 5.
The original clipped gradients inside the LSTM's backward pass (Lasagne ``grad_clipping``);
torch's fused LSTM has no such hook, so we clip the global gradient norm at the same value.

Runs data-parallel under ``torchrun`` (DistributedDataParallel): each process takes every
n-th batch, gradients are averaged, and only rank 0 writes and prints.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from instrument.model import checkpoint, vocab
from instrument.errors import UsageError
from instrument.model.network import FolkRNN, ModelConfig, loss_per_tune
from instrument.music.tunes import Tune, parse_tunes

STATE_SUFFIX = ".train-state.pt"


@dataclass
class TrainConfig:
    data: str
    out: str
    epochs: int = 100
    layers: int = 3
    hidden: int = 512  # units per layer (ModelConfig.hidden)
    dropout: float = 0.5
    forget_bias: float = 5.0
    batch: int = 64
    lr: float = 0.003
    lr_decay: float = 0.97
    lr_decay_after: int = 20
    clip: float = 5.0
    seed: int = 42
    device: str = "cpu"
    half: bool = False
    max_length: int = 1000
    limit_batches: int = 0  # for quick runs: at most this many batches an epoch (0 = all)
    collections: tuple[str, ...] = ()  # train only on these collections (empty: all)
    weights: dict[str, float] = field(default_factory=dict)  # collection -> times each tune is seen an epoch
    min_repeated_parts: int = 0  # train only on tunes with at least this many repeated parts
    init: str = ""  # start from this checkpoint's weights (fine-tuning) instead of at random
    bf16: bool = False  # bfloat16 autocast for the products (faster on CPUs with AVX512-BF16/AMX)


@dataclass
class History:
    """What the model card reports: per-epoch losses (mean NLL per token, nats) and time."""

    epoch: int = 0
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    best_valid: float = math.inf
    best_epoch: int = 0


@dataclass
class Split:
    """One split's encoded tunes with each tune's corpus row (collection, dance type, form)."""

    tunes: list[list[int]]
    meta: list[dict[str, str]]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.meta:
            out[m.get("collection", "?")] = out.get(m.get("collection", "?"), 0) + 1
        return out


def read_split(path: Path, collections: tuple[str, ...] = (), min_repeated_parts: int = 0
               ) -> tuple[list[Tune], list[dict[str, str]]]:
    """The tunes of one split file with their corpus rows, only those of ``collections`` (all when
    empty) with at least ``min_repeated_parts``. The rows come from ``<split>.meta.tsv`` beside
    it; a corpus without one has empty rows (and selecting from it keeps nothing)."""
    from instrument.training.corpus import meta_path, read_meta

    if not path.is_file():
        raise UsageError(f"{path} not found; build a corpus with 'run.py corpus --out DIR' and give --data DIR")
    tunes: list[Tune] = parse_tunes(path.read_text(), source=str(path))
    meta = read_meta(meta_path(path))
    if meta and len(meta) != len(tunes):
        raise UsageError(f"{meta_path(path)} has {len(meta)} rows for {len(tunes)} tunes; rebuild the corpus with 'run.py corpus'")
    meta = meta or [{} for _ in tunes]
    keep = [i for i, m in enumerate(meta)
            if (not collections or m.get("collection", "") in collections)
            and int(m.get("repeated_parts", 0) or 0) >= min_repeated_parts]
    return [tunes[i] for i in keep], [meta[i] for i in keep]


def load_split(path: Path, max_length: int, collections: tuple[str, ...] = (), min_repeated_parts: int = 0) -> Split:
    """Encoded tunes (``<s>`` .. ``</s>``) of one split and their corpus rows, longest dropped.

    A corpus file holds whole tunes without ``</s>`` (folk-rnn's data format), so every tune is
    marked ended here: the model must learn where tunes stop, or its tunes never end.
    """
    tunes, meta = read_split(path, collections, min_repeated_parts)
    encoded = [vocab.encode(replace(t, ended=True).tokens()) for t in tunes]
    keep = [i for i, e in enumerate(encoded) if len(e) <= max_length]
    return Split([encoded[i] for i in keep], [meta[i] for i in keep])


def epoch_indices(split: Split, weights: dict[str, float], rng: np.random.Generator) -> list[int]:
    """Which tunes an epoch sees: a tune of a collection weighted w is seen floor(w) times and
    once more with probability w - floor(w) (weight 1, the default, is once)."""
    out: list[int] = []
    for i, m in enumerate(split.meta):
        w = weights.get(m.get("collection", ""), 1.0)
        times = int(w) + (1 if rng.random() < w - int(w) else 0)
        out += [i] * times
    return out


def length_batches(tunes: list[list[int]], batch: int, rng: np.random.Generator,
                   indices: list[int] | None = None) -> list[list[int]]:
    """Indices of tunes (``indices``: an epoch's, repeats allowed; default every tune once)
    grouped into batches of similar length, in random order.

    Tunes are sorted by length with random tie-breaking, cut into batches, and the batches
    shuffled, so padding stays small and every epoch sees different neighbours.
    """
    pool = np.arange(len(tunes)) if indices is None else np.asarray(indices)
    lengths = np.array([len(tunes[i]) for i in pool])
    order = pool[np.lexsort((rng.random(len(pool)), lengths))]
    batches = [order[i : i + batch].tolist() for i in range(0, len(order), batch)]
    rng.shuffle(batches)
    return batches


def collate(tunes: list[list[int]], indices: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(tunes[i]) for i in indices)
    pad = vocab.INDEX[vocab.END]
    x = torch.full((len(indices), longest), pad, dtype=torch.long)
    for row, i in enumerate(indices):
        x[row, : len(tunes[i])] = torch.tensor(tunes[i])
    lengths = torch.tensor([len(tunes[i]) for i in indices])
    return x.to(device), lengths.to(device)


@torch.no_grad()
def evaluate(model: FolkRNN, tunes: list[list[int]], batch: int, device: torch.device) -> float:
    """Mean NLL per predicted token over a split (nats)."""
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(tunes)), key=lambda i: len(tunes[i]))
    for start in range(0, len(order), batch):
        x, lengths = collate(tunes, order[start : start + batch], device)
        total += float(loss_per_tune(model, x, lengths).sum())
        count += int((lengths - 1).sum())
    model.train()
    return total / max(count, 1)


class _StopFlag:
    """Ctrl-C or SIGTERM asks the loop to stop after the batch in hand, then save."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.stop:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Progress:
    """One status line: epoch, batch, loss, tokens/s and time left. Redrawn in place on a
    terminal; a plain line every 30 s otherwise (logs of background runs)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def update(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self.last > 0.2:
                sys.stderr.write("\r" + text[:150].ljust(150))
                sys.stderr.flush()
                self.last = now
        elif force or now - self.last > 30:
            print(text, file=sys.stderr, flush=True)
            self.last = now

    def line(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                sys.stderr.write("\r" + " " * 150 + "\r")
            print(text, file=sys.stderr, flush=True)


def _distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" in os.environ and not dist.is_initialized():  # launched by torchrun, even as one process
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if dist.is_initialized() else 0), world


def state_path(out: str | Path) -> Path:
    return Path(str(out) + STATE_SUFFIX)


def train(cfg: TrainConfig, resume: bool = False, verbose: bool = True) -> History:
    """Train (or resume) and write the best-validation model to ``cfg.out``."""
    rank, world = _distributed()
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if cfg.device == "cuda" and dist.is_initialized() else cfg.device)
    data = Path(cfg.data)
    train_split, valid_split = _splits(cfg, data)
    train_set, valid_set = train_split.tunes, valid_split.tunes
    model = _initial_model(cfg, resume).to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=0.9, eps=1e-6)
    history = History()
    spath = state_path(cfg.out)
    if resume:
        history = _resume(spath, model, optimizer, cfg, device)
    trainee = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    progress = Progress(verbose and rank == 0)
    if cfg.collections or cfg.min_repeated_parts or cfg.weights:
        progress.line("training tunes by collection: " + ", ".join(f"{k} {v}" for k, v in sorted(train_split.counts().items()))
                      + (f" (weights {cfg.weights})" if cfg.weights else ""))
    progress.line(
        f"training {cfg.layers} x {cfg.hidden} LSTM ({model.parameter_count():,} parameters) on {len(train_set)} tunes "
        f"({sum(map(len, train_set)):,} tokens), validating on {len(valid_set)}; {world} process(es) on {device}"
        + (" (DistributedDataParallel)" if dist.is_initialized() else "")
    )
    model.train()
    started_total = time.monotonic()
    with _StopFlag() as flag:
        while history.epoch < cfg.epochs and not flag.stop:
            epoch = history.epoch + 1
            lr = cfg.lr * (cfg.lr_decay ** max(0, epoch - cfg.lr_decay_after))
            for group in optimizer.param_groups:
                group["lr"] = lr
            rng = np.random.default_rng([cfg.seed, epoch])
            batches = length_batches(train_set, cfg.batch, rng, epoch_indices(train_split, cfg.weights, rng))
            if cfg.limit_batches:
                batches = batches[: cfg.limit_batches]
            batches = batches[: max(world, len(batches) // world * world)]  # every process steps equally often
            mine = batches[rank::world]
            started = time.monotonic()
            number, done_tokens, loss_sum = _epoch(trainee, model, optimizer, train_set, mine, cfg, epoch, world,
                                                   device, progress, flag)
            if flag.stop and number < len(mine):
                break  # an unfinished epoch is not counted; resuming repeats it
            valid = evaluate(model, valid_set, cfg.batch, device)
            history.epoch = epoch
            history.train_loss.append(loss_sum / max(done_tokens, 1))
            history.valid_loss.append(valid)
            history.seconds.append(time.monotonic() - started)
            history.tokens_per_s.append(done_tokens * world / max(history.seconds[-1], 1e-9))
            best = valid < history.best_valid
            if best:
                history.best_valid, history.best_epoch = valid, epoch
            if rank == 0:
                progress.line(
                    f"epoch {epoch}: train {history.train_loss[-1]:.4f} valid {valid:.4f} nats/token, "
                    f"{history.tokens_per_s[-1]:,.0f} tok/s, lr {lr:.5f}" + (" (best so far)" if best else "")
                )
                _save_state(spath, model, optimizer, history, cfg)
                if best:
                    checkpoint.save(cfg.out, model, _metadata(cfg, history, data, device, world, train_split, valid_split), half=cfg.half)
    if rank == 0:
        if flag.stop:
            _save_state(spath, model, optimizer, history, cfg)
            progress.line(f"stopped after epoch {history.epoch}; state saved to {spath}; continue with --resume")
        else:
            progress.line(f"done in {_clock(time.monotonic() - started_total)}; best valid {history.best_valid:.4f} at epoch {history.best_epoch}; wrote {cfg.out}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return history


def _resume(spath: Path, model, optimizer, cfg: TrainConfig, device) -> History:
    """Load the saved training state into ``model`` and ``optimizer``; its history."""
    if not spath.is_file():
        raise UsageError(f"nothing to resume: {spath} not found; start without --resume")
    state = torch.load(spath, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    saved = state["config"].get("hidden", state["config"].get("size"))  # "size": states saved before the rename
    if state["config"]["layers"] != cfg.layers or saved != cfg.hidden:
        raise UsageError(f"{spath} holds a {state['config']['layers']} x {saved} model; give the same --layers/--hidden")
    return History(**state["history"])


def _epoch(trainee, model, optimizer, train_set, mine, cfg: TrainConfig, epoch: int, world: int, device,
           progress: "Progress", flag: "_StopFlag") -> tuple[int, int, float]:
    """One epoch's batches ``mine``: (batches done, tokens done, summed loss); stops early at Ctrl-C."""
    total_tokens = sum(len(train_set[i]) - 1 for b in mine for i in b)
    started, done_tokens, loss_sum, number = time.monotonic(), 0, 0.0, 0
    for number, indices in enumerate(mine, 1):
        x, lengths = collate(train_set, indices, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = loss_per_tune(trainee, x, lengths).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        done_tokens += int((lengths - 1).sum())
        loss_sum += float(loss.detach()) * len(indices)
        rate = done_tokens / max(time.monotonic() - started, 1e-9)
        left = (total_tokens - done_tokens) / max(rate, 1e-9) + (cfg.epochs - epoch) * total_tokens / max(rate, 1e-9)
        progress.update(
            f"epoch {epoch}/{cfg.epochs} batch {number}/{len(mine)} loss/token {loss_sum / done_tokens:.3f} "
            f"{rate * world:,.0f} tok/s, {_clock(left)} left"
        )
        if flag.stop:
            break
    return number, done_tokens, loss_sum


def _splits(cfg: TrainConfig, data: Path) -> tuple[Split, Split]:
    """The training and validation tunes this run learns from (its selection of the corpus)."""
    train_split = load_split(data / "train.txt", cfg.max_length, cfg.collections, cfg.min_repeated_parts)
    valid_split = load_split(data / "valid.txt", cfg.max_length, cfg.collections, cfg.min_repeated_parts)
    if not train_split.tunes or not valid_split.tunes:
        held = sorted(load_split(data / "train.txt", cfg.max_length).counts())
        raise UsageError(f"no tunes left in {data} after --collections/--min-repeated-parts; "
                         f"the corpus holds {', '.join(held) or 'no collection names'}")
    unknown = sorted(set(cfg.weights) - set(train_split.counts()))
    if unknown:
        raise UsageError(f"--weights names {', '.join(unknown)}, not a collection of this training set "
                         f"({', '.join(sorted(train_split.counts()))})")
    return train_split, valid_split


def _initial_model(cfg: TrainConfig, resume: bool) -> FolkRNN:
    """A fresh network with the recipe's initialisation, or ``--init``'s weights to fine-tune."""
    torch.manual_seed(cfg.seed)
    model = FolkRNN(ModelConfig(layers=cfg.layers, hidden=cfg.hidden, dropout=cfg.dropout))
    for layer in model.layers:  # a smaller forget bias leaves the unigram plateau sooner on short budgets
        layer.reset_parameters(forget_bias=cfg.forget_bias)
    if cfg.init and not resume:
        start, _ = checkpoint.load(cfg.init)
        if (start.config.layers, start.config.hidden) != (cfg.layers, cfg.hidden):
            raise UsageError(f"--init {cfg.init} is a {start.config.layers} x {start.config.hidden} model; "
                             f"give --layers {start.config.layers} --hidden {start.config.hidden}")
        model.load_state_dict({k: v.float() for k, v in start.state_dict().items()})
    return model


def _save_state(path: Path, model, optimizer, history: History, cfg: TrainConfig) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": asdict(history), "config": asdict(cfg)}, tmp)
    tmp.replace(path)


def _metadata(cfg: TrainConfig, history: History, data: Path, device, world: int,
              train_split: Split, valid_split: Split) -> dict[str, Any]:
    import json

    report = data / "report.json"
    corpus = json.loads(report.read_text()) if report.is_file() else {}
    init = {}
    if cfg.init:
        _, start = checkpoint.load(cfg.init)
        init = {"path": cfg.init, "name": start.get("name"), "train_config": start.get("train_config"),
                "valid_loss": start.get("valid_loss"), "training_seconds": start.get("training_seconds")}
    return {
        "trained_on": {"train": train_split.counts(), "valid": valid_split.counts(),
                       "train_tokens": sum(map(len, train_split.tunes)), "valid_tokens": sum(map(len, valid_split.tunes))},
        "init": init,
        "name": Path(cfg.out).stem,
        "trained": True,
        "recipe": "folk-rnn v2 (config5)",
        "epochs": history.epoch,
        "best_epoch": history.best_epoch,
        "train_loss": history.train_loss,
        "valid_loss": history.valid_loss,
        "epoch_seconds": history.seconds,
        "tokens_per_s": history.tokens_per_s,
        "training_seconds": sum(history.seconds),
        "hardware": f"{_cpu_name()}, {torch.get_num_threads()} threads, {world} process(es), {device}",
        "torch": torch.__version__,
        "train_config": asdict(cfg),
        "corpus": corpus,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
