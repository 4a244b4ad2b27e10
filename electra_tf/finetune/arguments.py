"""The fine-tuning commands' arguments (argparse only: the CLI builds its parser before it
imports TensorFlow, so that it can quiet TensorFlow's start-up logging first). The handlers are
in `commands.py`."""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    """Adds finetune, evaluate and predict to the CLI's subparsers."""
    finetune = subparsers.add_parser(
        "finetune", help="fine-tune a pretrained encoder on a downstream task",
        description="Fine-tune on classification, regression or tagging. Resumes from "
                    "train.run_dir; SIGTERM saves a checkpoint and exits with code 143.")
    finetune.add_argument("--config", required=True, metavar="PATH",
                          help="YAML fine-tuning config (see configs/finetune/)")
    finetune.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="KEY=VALUE",
                          help="override a config field, e.g. --set task.epochs=2 (repeatable)")
    finetune.add_argument("--compare-random", action="store_true",
                          help="then run the same fine-tuning from a random initialisation "
                               "(into RUN_DIR_random_init) and print both scores")

    evaluate = subparsers.add_parser("evaluate", help="evaluate a fine-tuned run on a split")
    evaluate.add_argument("--run-dir", required=True, metavar="DIR")
    evaluate.add_argument("--split", default="validation",
                          choices=["train", "validation", "test"])
    _checkpoint_argument(evaluate)

    predict = subparsers.add_parser("predict", help="predict with a fine-tuned run (JSONL out)")
    predict.add_argument("--run-dir", required=True, metavar="DIR")
    predict.add_argument("--input", required=True, metavar="FILE",
                         help="JSONL ({\"text\": ..., \"text_pair\": ...}) or plain text lines")
    predict.add_argument("--output", default=None, metavar="FILE",
                         help="where to write the JSONL predictions (default: standard output)")
    _checkpoint_argument(predict)


def _checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="best", choices=["best", "latest"],
                        help="the best checkpoint by task.main_metric (default), or the latest")


# ----------------------------------------------------------------------------------------------
# Handlers
# ----------------------------------------------------------------------------------------------
