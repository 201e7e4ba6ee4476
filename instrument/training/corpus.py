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
from instrument.music.form import tune_form
from instrument.music.tunes import Tune, format_tunes
from instrument.training.convert import Converted, convert

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

    def meta(self) -> dict[str, str]:
        """The row of this tune in ``train.meta.tsv`` / ``valid.meta.tsv``: where it came from."""
        form = tune_form(self.tune)
        c = self.converted
        return {
            "collection": self.collection,
            "source": self.source,
            "rhythm": c.rhythm,
            "written_key": c.written.name if c.written else c.key.name,
            "key": c.key.name,
            "mode_rule": c.rule,
            "repeated_parts": str(form.repeated_parts),
        }


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
    agreement: Counter = field(default_factory=Counter)  # the mode rule on tunes whose K: names the mode

    @property
    def train_kept(self) -> list[Kept]:
        valid = set(self.valid_indices)
        return [k for i, k in enumerate(self.kept) if i not in valid]

    @property
    def valid_kept(self) -> list[Kept]:
        return [self.kept[i] for i in self.valid_indices]

    @property
    def train(self) -> list[Tune]:
        return [k.tune for k in self.train_kept]

    @property
    def valid(self) -> list[Tune]:
        return [k.tune for k in self.valid_kept]


def split_indices(count: int, seed: int, fraction: float = VALID_FRACTION) -> list[int]:
    """Indices of the validation tunes: a fixed-seed random ``fraction`` of ``count``, sorted."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return sorted(order[: round(count * fraction)])


def build(tunes_by_collection: dict[str, list[AbcTune]], seed: int = DEFAULT_SEED, modes: str = "inferred") -> Corpus:
    """Convert every tune, keep the first of each set of identical token sequences, split.

    ``modes``: "inferred" takes the mode of a tune whose K: names only a key from its tonic,
    "written" takes every K: at its word (``convert.convert``).
    """
    kept: list[Kept] = []
    seen: set[tuple[str, ...]] = set()
    counts: dict[str, CollectionCounts] = {}
    details: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    agreement: Counter = Counter()
    for collection, tunes in tunes_by_collection.items():
        tally = counts[collection] = CollectionCounts()
        for abc in tunes:
            tally.read += 1
            source = f"{abc.source}#{abc.number}"
            try:
                converted = convert(abc, modes)
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
            if converted.hidden_check:
                agreement[converted.hidden_check] += 1
    return Corpus(kept, split_indices(len(kept), seed), counts, dict(details), dict(examples), seed, agreement)


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
        "modes_as_written": _sorted(Counter((k.converted.written or k.converted.key).mode for k in corpus.kept)),
        "mode_rules": _sorted(Counter(k.converted.rule for k in corpus.kept)),
        # the rule run on the tunes whose K: names the mode, with that name hidden from it
        "mode_agreement": {**_sorted(corpus.agreement),
                           "share": round(corpus.agreement["agree"] / max(sum(corpus.agreement.values()), 1), 4)},
        "collection_modes": {name: _sorted(Counter(k.tune.mode for k in corpus.kept if k.collection == name))
                             for name in corpus.counts},
        "collection_forms": {name: _form_counts([k for k in corpus.kept if k.collection == name]) for name in corpus.counts},
        "meter_modes": _sorted(Counter(f"{t.meter} {t.mode}" for t in tunes)),
        "keys": _sorted(Counter(k.converted.key.name for k in corpus.kept)),
    }


def _form_counts(kept: list[Kept]) -> dict[str, int]:
    forms = [tune_form(k.tune) for k in kept]
    return {"tunes": len(forms), "repeat": sum(f.has_repeat for f in forms),
            "two_repeated_parts": sum(f.two_repeated_parts for f in forms), "endings": sum(f.has_endings for f in forms)}


META_FIELDS = ("collection", "source", "rhythm", "written_key", "key", "mode_rule", "repeated_parts")


def meta_path(split: Path) -> Path:
    """``train.txt`` -> ``train.meta.tsv``: one row per tune, in the same order."""
    return split.with_name(split.stem + ".meta.tsv")


def write_meta(kept: list[Kept], path: Path) -> None:
    rows = ["\t".join(META_FIELDS)]
    for k in kept:
        meta = k.meta()
        rows.append("\t".join(meta[f].replace("\t", " ") for f in META_FIELDS))
    path.write_text("\n".join(rows) + "\n")


def read_meta(path: Path) -> list[dict[str, str]]:
    """The rows ``write_meta`` wrote; [] when the file is missing (a corpus from elsewhere)."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    fields = lines[0].split("\t")
    return [dict(zip(fields, line.split("\t"))) for line in lines[1:] if line]


def write(corpus: Corpus, out: Path) -> dict:
    """Write ``train.txt``, ``valid.txt``, their ``.meta.tsv`` (collection, source, dance type,
    key and form of every tune, in the same order) and ``report.json``; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text(format_tunes(corpus.train))
    (out / "valid.txt").write_text(format_tunes(corpus.valid))
    write_meta(corpus.train_kept, meta_path(out / "train.txt"))
    write_meta(corpus.valid_kept, meta_path(out / "valid.txt"))
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
    if "modes_as_written" in summary:
        lines.append("modes as K: writes them: " + ", ".join(f"{m} {n}" for m, n in summary["modes_as_written"].items()))
        lines.append("modes from the music:    " + ", ".join(f"{m} {n}" for m, n in summary["modes"].items()))
        a = summary["mode_agreement"]
        lines.append(f"mode rule on {sum(v for k, v in a.items() if k != 'share')} tunes whose K: names the mode "
                     f"(name hidden): agree {a.get('agree', 0)}, unclear {a.get('unclear', 0)}, "
                     f"disagree {a.get('disagree', 0)} ({100 * a['share']:.1f}% agree)")
    split = summary["split"]
    lines.append(f"train {split['train']} tunes ({summary['tokens']['train']} tokens with <s> and </s>), "
                 f"valid {split['valid']} tunes ({summary['tokens']['valid']} tokens), seed {split['seed']}")
    return lines
