"""The `electra-tf` command line: pretrain, build-vocab, export."""

from __future__ import annotations

import argparse
import logging
import os
import sys

EXIT_ERROR = 1      # bad input: config, data, checkpoint
EXIT_NAN = 3        # the loss became NaN/Inf
EXIT_PREEMPTED = 143  # SIGTERM: a checkpoint was saved, rerun the same command to resume

log = logging.getLogger("electra_tf")


def _config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", required=required, metavar="PATH",
                        help="YAML run config (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config field, e.g. --set train.steps=100 (repeatable)")


def _vocab_size(text: str) -> int:
    """--size of build-vocab: the five special tokens and at least one more."""
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if size < 6:
        raise argparse.ArgumentTypeError(f"must be at least 6 (the five special tokens and one "
                                         f"more), got {size}")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="electra-tf", description="Pretrain ELECTRA text encoders with TensorFlow 2.")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pretrain = commands.add_parser(
        "pretrain", help="pretrain a generator and discriminator",
        description="Pretrain ELECTRA. Resumes automatically from train.run_dir; SIGTERM saves "
                    "a checkpoint and exits with code 143.")
    _config_arguments(pretrain)

    vocab = commands.add_parser(
        "build-vocab", help="learn a WordPiece vocabulary from the configured corpus",
        description="Learn a WordPiece vocabulary ([PAD] [UNK] [CLS] [SEP] [MASK] first) "
                    "from the corpus in the config's data section.")
    _config_arguments(vocab, required=False)
    vocab.add_argument("--out", required=True, metavar="PATH", help="where to write vocab.txt")
    vocab.add_argument("--size", type=_vocab_size, default=None,
                       help="vocabulary size (default: data.vocab_size)")

    export = commands.add_parser(
        "export", help="export a trained run as a SavedModel or HuggingFace model",
        description="Export the discriminator (and generator) of a run.")
    export.add_argument("--run-dir", required=True, metavar="DIR")
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--format", choices=["saved_model", "huggingface"],
                        default="saved_model")
    export.add_argument("--step", type=int, default=None,
                        help="checkpoint step to export (default: the latest)")
    export.add_argument("--demo", action="store_true",
                        help="after exporting a SavedModel, load it and show the "
                             "discriminator flagging a replaced word")
    return parser


def _pretrain(args) -> int:
    from electra_tf.config import load_config
    from electra_tf.pretraining import PretrainingTask
    from electra_tf.training.trainer import Trainer

    config = load_config(args.config, args.overrides)
    result = Trainer(PretrainingTask(config)).train()
    run_dir = config.train.run_dir
    print(f"\n{result.status} at step {result.step}.\n"
          f"  checkpoints: {os.path.join(run_dir, 'checkpoints')}\n"
          f"  TensorBoard: tensorboard --logdir {os.path.join(run_dir, 'tensorboard')}")
    if result.eval_metrics:
        shown = {k: round(v, 4) for k, v in result.eval_metrics.items()}
        print(f"  held-out eval: {shown}")
    return EXIT_PREEMPTED if result.status == "preempted" else 0


def _build_vocab(args) -> int:
    from electra_tf.config import load_config
    from electra_tf.data import build_vocab

    config = load_config(args.config, args.overrides)
    size = args.size if args.size is not None else config.data.vocab_size
    path = build_vocab(config.data, args.out, size)
    print(f"wrote {path}")
    return 0


def _export(args) -> int:
    from electra_tf.export import export_run

    out = export_run(args.run_dir, args.out, fmt=args.format, step=args.step)
    print(f"exported {args.format} to {out}")
    if args.demo:
        from electra_tf.export.demo import run_demo

        print(run_demo(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "export" and args.demo and args.format != "saved_model":
        parser.error("--demo needs --format saved_model")
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from electra_tf.errors import UserError
    from electra_tf.training.trainer import NonFiniteLossError

    handlers = {"pretrain": _pretrain, "build-vocab": _build_vocab, "export": _export}
    try:
        return handlers[args.command](args)
    except (UserError, FileNotFoundError) as e:
        print(f"electra-tf {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except NonFiniteLossError as e:
        print(f"electra-tf {args.command}: error: {e}", file=sys.stderr)
        return EXIT_NAN
    except KeyboardInterrupt:
        print(f"electra-tf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
