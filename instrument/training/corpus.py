"""Build the training corpus: convert music21's ABC collections, drop duplicates, split, report.

Training reads ``train.txt`` and ``valid.txt`` (the tokens format); ``report.json`` says what
went in and why the rest did not, and holds the meter and mode proportions that the real-time
engine draws new tunes' headers from.
"""

from __future__ import annotations

import importlib.util
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from instrument.music.abc_reader import AbcTune, TuneSkipped, split_tunes
from instrument.training.convert import Converted, convert
from instrument.music.tunes import Tune, format_tunes

DEFAULT_COLLECTIONS: tuple[str, ...] = ("oneills1850", "ryansMammoth", "airdsAirs", "miscFolk", "essenFolksong")
VALID_FRACTION = 0.05
DEFAULT_SEED = 2017
EXAMPLES_PER_REASON = 5


def corpus_root() -> Path:
    """music21's ``corpus`` folder, found without importing music21 (which is slow to load)."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("music21 is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "corpus"


def available_collections(root: Path | None = None) -> list[str]:
    """Every folder of music21's corpus that holds ABC files."""
    root = root or corpus_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and next(p.rglob("*.abc"), None))


def read_collection(name: str, root: Path | None = None) -> list[AbcTune]:
    """All tunes of one collection, in file order; sources read ``collection/file.abc``."""
    root = root or corpus_root()
    tunes: list[AbcTune] = []
    for path in sorted((root / name).rglob("*.abc")):
        # latin-1 never fails; only titles and comments hold non-ASCII text.
        text = path.read_text(encoding="latin-1")
        tunes += split_tunes(text, source=path.relative_to(root).as_posix())
    return tunes


@dataclass
class Kept:
    """A tune that went into the corpus, with where it came from."""

    collection: str
    abc: AbcTune
    converted: Converted

    @property
    def source(self) -> str:
        return f"{self.abc.source}#{self.abc.number}"

    @property
    def tune(self) -> Tune:
        return self.converted.tune


@dataclass
class CollectionCounts:
    read: int = 0
    kept: int = 0
    duplicates: int = 0
    skipped: Counter = field(default_factory=Counter)


@dataclass
class Corpus:
    """The result of a build: the unique tunes, the split and the counts behind the report."""

    kept: list[Kept]
    valid_indices: list[int]
    counts: dict[str, CollectionCounts]
    details: dict[str, Counter]
    examples: dict[str, list[str]]
    seed: int

    @property
    def train(self) -> list[Tune]:
        valid = set(self.valid_indices)
        return [k.tune for i, k in enumerate(self.kept) if i not in valid]

    @property
    def valid(self) -> list[Tune]:
        return [self.kept[i].tune for i in self.valid_indices]


def split_indices(count: int, seed: int, fraction: float = VALID_FRACTION) -> list[int]:
    """Indices of the validation tunes: a fixed-seed random ``fraction`` of ``count``, sorted."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return sorted(order[: round(count * fraction)])


def build(tunes_by_collection: dict[str, list[AbcTune]], seed: int = DEFAULT_SEED) -> Corpus:
    """Convert every tune, keep the first of each set of identical token sequences, split."""
    kept: list[Kept] = []
    seen: set[tuple[str, ...]] = set()
    counts: dict[str, CollectionCounts] = {}
    details: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    for collection, tunes in tunes_by_collection.items():
        tally = counts[collection] = CollectionCounts()
        for abc in tunes:
            tally.read += 1
            source = f"{abc.source}#{abc.number}"
            try:
                converted = convert(abc)
            except TuneSkipped as skip:
                tally.skipped[skip.reason] += 1
                details[skip.reason][skip.detail] += 1
                if len(examples[skip.reason]) < EXAMPLES_PER_REASON:
                    examples[skip.reason].append(source)
                continue
            except Exception as error:  # a reader bug must not stop the build; count it
                reason = f"reader error {type(error).__name__}"
                tally.skipped[reason] += 1
                details[reason][str(error)[:80]] += 1
                continue
            identity = tuple(converted.tune.tokens())
            if identity in seen:
                tally.duplicates += 1
                continue
            seen.add(identity)
            tally.kept += 1
            kept.append(Kept(collection, abc, converted))
    return Corpus(kept, split_indices(len(kept), seed), counts, dict(details), dict(examples), seed)


def _sorted(counter: Counter) -> dict:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], str(item[0]))))


def report(corpus: Corpus) -> dict:
    """The counts of a build, as written to ``report.json``."""
    skipped = Counter()
    for tally in corpus.counts.values():
        skipped.update(tally.skipped)
    tunes = [k.tune for k in corpus.kept]
    train, valid = corpus.train, corpus.valid
    return {
        "collections": {
            name: {"read": t.read, "kept": t.kept, "duplicates": t.duplicates, "skipped": _sorted(t.skipped)}
            for name, t in corpus.counts.items()
        },
        "read": sum(t.read for t in corpus.counts.values()),
        "kept": len(tunes),
        "duplicates": sum(t.duplicates for t in corpus.counts.values()),
        "skipped": _sorted(skipped),
        "skipped_detail": {reason: _sorted(corpus.details[reason]) for reason in _sorted(skipped)},
        "skipped_examples": {reason: corpus.examples.get(reason, []) for reason in _sorted(skipped)},
        "split": {"seed": corpus.seed, "valid_fraction": VALID_FRACTION, "train": len(train), "valid": len(valid)},
        # as the model sees each tune: <s>, meter, mode, body, </s>
        "tokens": {"train": sum(len(t.tokens()) for t in train), "valid": sum(len(t.tokens()) for t in valid)},
        "meters": _sorted(Counter(t.meter for t in tunes)),
        "modes": _sorted(Counter(t.mode for t in tunes)),
        "meter_modes": _sorted(Counter(f"{t.meter} {t.mode}" for t in tunes)),
        "keys": _sorted(Counter(k.converted.key.name for k in corpus.kept)),
    }


def write(corpus: Corpus, out: Path) -> dict:
    """Write ``train.txt``, ``valid.txt`` and ``report.json`` into ``out``; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text(format_tunes(corpus.train))
    (out / "valid.txt").write_text(format_tunes(corpus.valid))
    summary = report(corpus)
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summary_lines(summary: dict) -> list[str]:
    """The report in a few lines for the terminal: per collection, then per skip reason."""
    lines = []
    for name, c in summary["collections"].items():
        lines.append(f"{name:<16} read {c['read']:>5}  kept {c['kept']:>5}  duplicates {c['duplicates']:>3}  "
                     f"skipped {sum(c['skipped'].values()):>5}")
    lines.append(f"{'total':<16} read {summary['read']:>5}  kept {summary['kept']:>5}  "
                 f"duplicates {summary['duplicates']:>3}  skipped {sum(summary['skipped'].values()):>5}")
    lines.append("skipped by reason:")
    for reason, count in summary["skipped"].items():
        top = ", ".join(f"{d or '-'} {n}" for d, n in list(summary["skipped_detail"][reason].items())[:4])
        lines.append(f"  {count:>5}  {reason}" + (f"  ({top})" if any(summary["skipped_detail"][reason]) else ""))
    split = summary["split"]
    lines.append(f"train {split['train']} tunes ({summary['tokens']['train']} tokens with <s> and </s>), "
                 f"valid {split['valid']} tunes ({summary['tokens']['valid']} tokens), seed {split['seed']}")
    return lines
