"""``run.py train``: train a model on a corpus directory with the folk-rnn v2 recipe."""

from __future__ import annotations

import argparse

from instrument.cli import fail, seed
from instrument.training.train import TrainConfig, train

HELP = "train a model on a corpus (folk-rnn v2 recipe; resumable; torchrun for several GPUs/machines)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig(data="", out="")
    parser.add_argument("--data", required=True, help="corpus directory with train.txt and valid.txt (from 'run.py corpus')")
    parser.add_argument("--out", required=True, help="checkpoint to write (the best validation epoch)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    parser.add_argument("--layers", type=int, default=d.layers, help=f"LSTM layers (default {d.layers})")
    parser.add_argument("--hidden", type=int, default=d.hidden, help=f"units per layer (default {d.hidden})")
    parser.add_argument("--forget-bias", type=float, default=d.forget_bias,
                        help=f"initial forget-gate bias (default {d.forget_bias}, the recipe's; 1 learns faster on short runs)")
    parser.add_argument("--dropout", type=float, default=d.dropout, help=f"dropout after each layer (default {d.dropout})")
    parser.add_argument("--batch", type=int, default=d.batch, help=f"tunes per batch (default {d.batch})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"RMSprop learning rate (default {d.lr})")
    parser.add_argument("--lr-decay", type=float, default=d.lr_decay, help=f"per-epoch decay factor (default {d.lr_decay})")
    parser.add_argument("--lr-decay-after", type=int, default=d.lr_decay_after, help=f"decay from this epoch on (default {d.lr_decay_after})")
    parser.add_argument("--clip", type=float, default=d.clip, help=f"gradient clipping (default {d.clip})")
    parser.add_argument("--seed", type=seed, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--device", default=d.device, help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--half", action="store_true", help="store the checkpoint in float16 (the shipped model)")
    parser.add_argument("--max-length", type=int, default=d.max_length, help="skip tunes longer than this many tokens")
    parser.add_argument("--limit-batches", type=int, default=0, help="at most this many batches an epoch (quick trials)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT's saved training state")
    parser.add_argument("--init", metavar="CHECKPOINT", default="",
                        help="start from this model's weights (fine-tuning): a shipped model's name (songs, session) or a checkpoint's path")
    pick = parser.add_argument_group("which tunes (the corpus's .meta.tsv says each tune's collection and form)")
    pick.add_argument("--collections", default="", metavar="A,B",
                      help="train and validate only on these collections (default: all)")
    pick.add_argument("--weights", default="", metavar="A=W,B=W",
                      help="times a tune of a collection is seen per epoch (e.g. essenFolksong=0.3,ryansMammoth=2; default 1)")
    pick.add_argument("--min-repeated-parts", type=int, default=0, metavar="N",
                      help="only tunes with at least N repeated parts (1: any repeat, 2: two-part dance tunes)")
    parser.add_argument("--bf16", action="store_true",
                        help="bfloat16 autocast for the products: faster on CPUs with AVX512-BF16 or AMX (and on GPUs)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1 or args.layers < 1 or args.hidden < 1 or args.batch < 1:
        fail("--epochs, --layers, --hidden and --batch must be at least 1")
    if not 0 <= args.dropout < 1:
        fail("--dropout must be in [0, 1)")
    collections = tuple(n.strip() for n in args.collections.split(",") if n.strip())
    weights: dict[str, float] = {}
    for item in (i for i in args.weights.split(",") if i.strip()):
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not name.strip() or not 0 <= weight < 100:
            fail(f"--weights takes NAME=W with W from 0 to 100, such as essenFolksong=0.3; not {item!r}")
        weights[name.strip()] = weight
    if args.min_repeated_parts < 0:
        fail("--min-repeated-parts must not be negative")
    cfg = TrainConfig(
        data=args.data, out=args.out, epochs=args.epochs, layers=args.layers, hidden=args.hidden, dropout=args.dropout, forget_bias=args.forget_bias,
        batch=args.batch, lr=args.lr, lr_decay=args.lr_decay, lr_decay_after=args.lr_decay_after, clip=args.clip,
        seed=args.seed, device=args.device, half=args.half, max_length=args.max_length, limit_batches=args.limit_batches,
        collections=collections, weights=weights, min_repeated_parts=args.min_repeated_parts, init=args.init, bf16=args.bf16,
    )
    train(cfg, resume=args.resume, verbose=not args.quiet)
    return 0
