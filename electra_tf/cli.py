"""The `electra-tf` command line: pretrain, build-vocab, export, finetune, evaluate, predict.

The entry point quiets TensorFlow's own start-up and C++ log lines (on a CPU machine they
include a "failed call to cuInit" error that is not one) unless `--verbose` is given or
TF_CPP_MIN_LOG_LEVEL is set; importing the library changes no logging.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile

from electra_tf.training import preemption
from electra_tf.training.preemption import EXIT_PREEMPTED  # 143: SIGTERM, checkpoint saved

EXIT_ERROR = 1      # bad input: config, data, checkpoint
EXIT_NAN = 3        # the loss became NaN/Inf

log = logging.getLogger("electra_tf")

QUIET_TF_LEVEL = "3"  # TF_CPP_MIN_LOG_LEVEL of the entry point: only fatal C++ messages
# A TensorFlow (absl) C++ log line: severity, date, e.g. "E0000 00:00:1796159288.8 ...".
_TF_LOG_LINE = re.compile(r"^([IWEF])\d{4} ")
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog()"


def _config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", required=required, metavar="PATH",
                        help="YAML run config (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config field, e.g. --set train.steps=100 (repeatable)")


def _verbose_argument(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--verbose", action="store_true", default=default,
                        help="show TensorFlow's own log lines (hidden by default; setting "
                             "TF_CPP_MIN_LOG_LEVEL also chooses them)")


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
    _verbose_argument(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pretrain = commands.add_parser(
        "pretrain", help="pretrain a generator and discriminator",
        description="Pretrain ELECTRA. Resumes automatically from train.run_dir; SIGTERM saves "
                    "a checkpoint and exits with code 143.")
    _config_arguments(pretrain)
    _verbose_argument(pretrain, default=argparse.SUPPRESS)

    vocab = commands.add_parser(
        "build-vocab", help="learn a WordPiece vocabulary from the configured corpus",
        description="Learn a WordPiece vocabulary ([PAD] [UNK] [CLS] [SEP] [MASK] first) "
                    "from the corpus in the config's data section.")
    _config_arguments(vocab, required=False)
    vocab.add_argument("--out", required=True, metavar="PATH", help="where to write vocab.txt")
    vocab.add_argument("--size", type=_vocab_size, default=None,
                       help="vocabulary size (default: data.vocab_size)")
    _verbose_argument(vocab, default=argparse.SUPPRESS)

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
    _verbose_argument(export, default=argparse.SUPPRESS)
    from electra_tf.finetune.arguments import add_commands

    add_commands(commands)
    return parser


def filter_tensorflow_log(text: str, min_level: int) -> str:
    """`text` without the TensorFlow C++ log records below `min_level` (TF_CPP_MIN_LOG_LEVEL:
    0 keeps all, 1 drops I, 2 also W, 3 also E); a record's continuation lines go with it, and
    absl's notice that logging is not initialised goes when anything is dropped."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        record = _TF_LOG_LINE.match(line)
        if record:
            dropping = "IWEF".index(record.group(1)) < min_level
        elif line.startswith(_ABSL_NOTICE):
            dropping = min_level > 0
        if not dropping:
            kept.append(line)
    return "".join(kept)


def _import_tensorflow_filtered(min_level: int) -> None:
    """Imports TensorFlow with file descriptor 2 captured, then writes back what `min_level`
    keeps: lines TensorFlow logs before it reads TF_CPP_MIN_LOG_LEVEL ignore the variable."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to capture
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write(filter_tensorflow_log(
                captured.read().decode("utf-8", "replace"), min_level))
            sys.stderr.flush()


def quiet_tensorflow(verbose: bool) -> None:
    """Hides TensorFlow's C++ and Python log lines below warnings; must run before TensorFlow's
    first import (if it was imported already, as by a program that uses electra-tf as a library,
    nothing changes). A TF_CPP_MIN_LOG_LEVEL set by the user is kept and applied."""
    if verbose or "tensorflow" in sys.modules:
        return
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_LEVEL)
    try:
        min_level = int(level)
    except ValueError:  # TensorFlow reads an unparsable level as 0
        min_level = 0
    if min_level > 0:
        _import_tensorflow_filtered(min_level)
        for name in ("tensorflow", "absl"):  # e.g. "INFO absl: Sharding callback duration"
            logging.getLogger(name).setLevel(logging.WARNING)


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


def _existing_ancestor(path: str) -> str | None:
    """The nearest directory (or file) above `path` that exists, if one can be found."""
    import tensorflow as tf

    current = os.path.dirname(path.rstrip("/")) or "."
    while not tf.io.gfile.exists(current):
        parent = os.path.dirname(current)
        if not parent or parent == current or parent.endswith(":"):  # "gs:" of gs://bucket
            return None
        current = parent
    return current


def check_output_file(out: str, what: str) -> None:
    """Fails at once if `out` (local or remote) cannot become a file: it is a directory, a
    directory on its way is a file, or its directory is not writable (a probe file is written
    and removed). Checked before work that takes minutes, such as learning a vocabulary."""
    import tensorflow as tf

    from electra_tf.data import DataError

    problem = f"cannot write {what} to {out}"
    try:
        if tf.io.gfile.isdir(out):
            raise DataError(f"{problem}: it is a directory; give a file path such as "
                            f"{out.rstrip('/')}/vocab.txt")
        ancestor = _existing_ancestor(out)
        if ancestor is None:
            return  # nothing to probe (a bucket that is not listed, say); the write will tell
        if not tf.io.gfile.isdir(ancestor):
            raise DataError(f"{problem}: {ancestor} is a file, not a directory")
        probe = os.path.join(ancestor, f".electra-tf-write-test-{os.getpid()}")
        try:
            with tf.io.gfile.GFile(probe, "w") as f:
                f.write("")
        except tf.errors.OpError as e:
            raise DataError(f"{problem}: cannot create files in {ancestor} ({e.message}); "
                            "choose another --out or fix the directory's permissions") from None
        finally:
            if tf.io.gfile.exists(probe):
                tf.io.gfile.remove(probe)
    except tf.errors.OpError as e:
        raise DataError(f"{problem}: {e.message}") from None


def _build_vocab(args) -> int:
    from electra_tf.config import load_config
    from electra_tf.data import build_vocab

    check_output_file(args.out, "the vocabulary")
    config = load_config(args.config, args.overrides)
    size = args.size if args.size is not None else config.data.vocab_size
    path = build_vocab(config.data, args.out, size)
    print(f"wrote {path}")
    return 0


def _export(args) -> int:
    from electra_tf.export import export_run
    from electra_tf.finetune.export import is_finetune_run

    if is_finetune_run(args.run_dir):
        from electra_tf.finetune.commands import export

        return export(args)

    out = export_run(args.run_dir, args.out, fmt=args.format, step=args.step)
    print(f"exported {args.format} to {out}")
    if args.demo:
        from electra_tf.export.demo import run_demo

        print(run_demo(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    preemption.watch()  # first: a SIGTERM during start-up must not be lost
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "export" and args.demo and args.format != "saved_model":
        parser.error("--demo needs --format saved_model")
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_tensorflow(args.verbose)
    from electra_tf.errors import UserError
    from electra_tf.finetune.commands import HANDLERS
    from electra_tf.training.trainer import NonFiniteLossError

    handlers = {"pretrain": _pretrain, "build-vocab": _build_vocab, "export": _export,
                **HANDLERS}
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
