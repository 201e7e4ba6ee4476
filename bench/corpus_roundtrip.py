#!/usr/bin/env python3
"""Round-trip figure of the corpus conversion over all kept tunes (or a sample).

For each kept tune, abc2midi's reading of the original ABC (moved by the transposition) must
give the same (onset, pitch) sequence as our token-to-note rules reading the converted tokens.
``--ours abc2midi`` reads our tokens with abc2midi instead, to tell a converter fault from a
fault of instrument.music.notes.

    python bench/corpus_roundtrip.py [--collections a,b] [--sample N] [--ours notes|abc2midi]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from instrument.training import corpus, roundtrip  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", default=",".join(corpus.DEFAULT_COLLECTIONS))
    parser.add_argument("--sample", type=int, default=0, help="check a random sample of this many kept tunes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ours", choices=("notes", "abc2midi"), default="notes")
    parser.add_argument("--show", type=int, default=20, help="list this many disagreements")
    args = parser.parse_args()

    started = time.perf_counter()
    tunes = {name: corpus.read_collection(name) for name in args.collections.split(",")}
    kept = corpus.build(tunes).kept
    if args.sample:
        kept = random.Random(args.seed).sample(kept, min(args.sample, len(kept)))
    pairs = [(k.abc, k.tune, k.converted.shift) for k in kept]
    reader = roundtrip.abc2midi_reader if args.ours == "abc2midi" else None
    outcomes = roundtrip.check(pairs, reader=reader)
    bad = [o for o in outcomes if o.problem]
    by_collection = Counter(o.source.split("/")[0] for o in outcomes)
    bad_by_collection = Counter(o.source.split("/")[0] for o in bad)
    for name, total in by_collection.items():
        print(f"{name:<16} {total - bad_by_collection[name]:>5} / {total:<5} agree")
    agree = len(outcomes) - len(bad)
    print(f"round trip ({args.ours}): {agree} / {len(outcomes)} tunes agree = {100 * agree / max(1, len(outcomes)):.2f}% "
          f"in {time.perf_counter() - started:.1f} s")
    if args.ours == "notes" and bad:
        # Which side moved: abc2midi reading our tokens tells the converter from the note rules.
        by_source = {k.source: k for k in kept}
        shown = bad[: args.show]
        second = roundtrip.check([(by_source[o.source].abc, by_source[o.source].tune, by_source[o.source].converted.shift)
                                  for o in shown], reader=roundtrip.abc2midi_reader)
        for outcome, other in zip(shown, second):
            where = ("abc2midi reads our tokens as it reads the original: notes and abc2midi differ on the tokens"
                     if other.problem is None else "abc2midi reads the original differently from our tokens")
            print(f"  {outcome.source}: {outcome.problem}\n      {where}")
    else:
        for outcome in bad[: args.show]:
            print(f"  {outcome.source}: {outcome.problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
