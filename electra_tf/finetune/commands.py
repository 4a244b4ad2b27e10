"""The fine-tuning commands of the `electra-tf` CLI: finetune, evaluate, predict.

    electra-tf finetune --config configs/finetune/sst2.yaml [--set task.epochs=2 ...]
                        [--compare-random]     # then from random init, both scores printed
    electra-tf evaluate --run-dir runs/sst2 [--split validation] [--checkpoint latest]
    electra-tf predict  --run-dir runs/sst2 --input texts.jsonl [--output predictions.jsonl]

`predict` reads JSONL (`{"text": ..., "text_pair": ...}`; tagging `{"words": [...]}` or
`{"text": ...}` split on whitespace) or plain text (one example per line; a tab separates a
pair) and writes one JSON object per example, in input order: `{"id", "label",
"probabilities"}` (classification), `{"id", "score"}` (regression), `{"id", "words", "tags"}`
(tagging). `cli.py` wires `add_commands` and `HANDLERS` into the command line.
"""

from __future__ import annotations

import json
import os
import sys

import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.data.errors import DataError

PREDICTIONS_FILE = "predictions_{split}.jsonl"


def finetune(args) -> int:
    from electra_tf.finetune.baseline import random_init_spec
    from electra_tf.finetune.config import load_spec
    from electra_tf.finetune.setup import prepare_task
    from electra_tf.training.preemption import EXIT_PREEMPTED

    spec = load_spec(args.config, args.overrides)
    compare_random = args.compare_random
    if compare_random and spec.init == "none":
        raise ConfigError(f"--compare-random: {args.config} already starts from a random "
                          "initialisation (task.init: none); set task.init to a pretrained "
                          "encoder")
    task = prepare_task(spec)
    status, scores = _train(task)
    if status != "completed" or not compare_random:
        return EXIT_PREEMPTED if status == "preempted" else 0
    print("\nThe same fine-tuning from a random initialisation (task.init: none), to compare:")
    control = prepare_task(random_init_spec(spec, task))
    status, control_scores = _train(control)
    if status != "completed":
        return EXIT_PREEMPTED if status == "preempted" else 0
    _print_comparison(task, {f"pretrained ({task.config.task.init})": scores,
                             "random init": control_scores})
    return 0


def _train(task) -> tuple[str, dict[str, dict[str, float]]]:
    """Trains `task` and prints where its run is and its scores. Returns the run's status and
    the metrics of its best checkpoint (else the last) by split: validation as evaluated in
    training, test from the pass that writes RUN_DIR/predictions_test.jsonl."""
    from electra_tf.finetune.setup import has_split
    from electra_tf.training.trainer import Trainer

    result = Trainer(task).train()
    run_dir = task.config.train.run_dir
    print(f"\n{result.status} at step {result.step}.\n"
          f"  checkpoints: {os.path.join(run_dir, 'checkpoints')}\n"
          f"  TensorBoard: tensorboard --logdir {os.path.join(run_dir, 'tensorboard')}")
    if result.eval_metrics:
        print(f"  validation: {_rounded(result.eval_metrics)}")
    scores = {"validation": result.best_metrics or result.eval_metrics}
    if result.status == "completed" and has_split(task.config, "test"):
        path, scores["test"] = write_split_predictions(run_dir, "test")
        print(f"  test predictions: {path}")
    return result.status, {split: m for split, m in scores.items() if m}


def _print_comparison(task, runs: dict[str, dict[str, dict[str, float]]]) -> None:
    """Prints the main metric of each {name: {split: metrics}} side by side."""
    metric = task.config.task.main_metric
    splits = list(dict.fromkeys(split for scores in runs.values() for split in scores))
    width = max(len(name) for name in runs)
    print(f"\nFine-tuned on {task.config.data.source} (scores x 100; the checkpoint with the best "
          f"validation {metric}):")
    print(f"  {'encoder':<{width}}  " + "  ".join(f"{s + ' ' + metric:>20}" for s in splits))
    for name, scores in runs.items():
        cells = [f"{100 * scores[s][metric]:>20.1f}" if s in scores else f"{'-':>20}"
                 for s in splits]
        print(f"  {name:<{width}}  " + "  ".join(cells))


def write_split_predictions(run_dir: str, split: str,
                            which: str = "best") -> tuple[str, dict[str, float]]:
    """Predictions for every example of a labelled split, as RUN_DIR/predictions_SPLIT.jsonl,
    and the metrics on it (from the same pass); returns (path, metrics)."""
    from electra_tf.finetune.inference import load_finetuned, write_jsonl

    run = load_finetuned(run_dir, which)
    metrics, records = run.evaluate_and_predict(split)
    path = os.path.join(run_dir, PREDICTIONS_FILE.format(split=split))
    return write_jsonl(records, path), metrics


def evaluate(args) -> int:
    from electra_tf.finetune.inference import load_finetuned

    run = load_finetuned(args.run_dir, args.checkpoint)
    values = run.evaluate(args.split)
    path = os.path.join(args.run_dir, f"eval_{args.split}.json")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps({"checkpoint": run.checkpoint, **values}, indent=1) + "\n")
    print(f"{args.split} ({run.checkpoint}): {_rounded(values)}")
    return 0


def predict(args) -> int:
    from electra_tf.finetune.inference import load_finetuned, write_jsonl

    run = load_finetuned(args.run_dir, args.checkpoint)
    rows = read_inputs(args.input, run.task.kind)
    records = run.predict_examples(examples_dataset(rows, run.task.kind))
    if run.task.kind == "tagging":
        for record in records:
            record["words"] = rows[record["id"]]["words"]
    if args.output:
        write_jsonl(records, args.output)
        print(f"wrote {len(records)} predictions to {args.output}", file=sys.stderr)
    else:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
    return 0


def export(args) -> int:
    """`electra-tf export` for a fine-tuning run (route here when `is_finetune_run(run_dir)`):
    --format saved_model (raw text in, labels out) or huggingface; --step is not supported
    (the best checkpoint is exported, else the latest)."""
    from electra_tf.finetune.export import export_finetuned

    if getattr(args, "step", None) is not None:
        raise ConfigError("--step: a fine-tuning run exports its best checkpoint (or the "
                        "latest); omit --step")
    out = export_finetuned(args.run_dir, args.out, fmt=args.format)
    print(f"exported {args.format} to {out}")
    return 0


HANDLERS = {"finetune": finetune, "evaluate": evaluate, "predict": predict}


def _rounded(values: dict) -> dict:
    return {k: round(v, 4) for k, v in values.items()}


# ----------------------------------------------------------------------------------------------
# Prediction inputs
# ----------------------------------------------------------------------------------------------


def _row(record, where: str, kind: str) -> dict:
    if isinstance(record, str):
        record = dict(zip(("text", "text_pair"), record.split("\t", 1), strict=False))
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with \"text\", got {record!r}")
    if kind == "tagging":
        words = record.get("words")
        if words is None and isinstance(record.get("text"), str):
            words = record["text"].split()
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError(f"{where}: a tagging input needs \"words\" (a list of strings) or "
                            "\"text\"")
        return {"words": words}
    text = record.get("text")
    pair = record.get("text_pair", "")
    if not isinstance(text, str) or not isinstance(pair, str):
        raise DataError(f"{where}: needs a string \"text\" (and optionally \"text_pair\")")
    return {"text": text, "text_pair": pair}


def read_inputs(path: str, kind: str) -> list[dict]:
    """The rows of a JSONL or plain-text input file (see the module doc)."""
    if not tf.io.gfile.exists(path):
        raise DataError(f"--input {path} does not exist")
    with tf.io.gfile.GFile(path, "rb") as f:
        try:
            lines = f.read().decode("utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise DataError(f"--input {path} is not UTF-8 text (byte {e.start})") from None
    is_jsonl = path.endswith((".jsonl", ".json")) or (
        bool(lines) and lines[0].lstrip().startswith("{"))
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if is_jsonl:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg})") from None
        else:
            record = line
        rows.append(_row(record, where, kind))
    if not rows:
        raise DataError(f"--input {path} holds no examples")
    return rows


def examples_dataset(rows: list[dict], kind: str) -> tf.data.Dataset:
    """Raw examples (the `read_examples` format) for unlabeled rows."""
    from electra_tf.finetune.sources import examples_from_lists

    if kind == "tagging":
        parsed = {"words": [r["words"] for r in rows],
                  "tags": [[""] * len(r["words"]) for r in rows]}
    else:
        parsed = {"text_a": [r["text"] for r in rows], "text_b": [r["text_pair"] for r in rows],
                  "label": [0.0 if kind == "regression" else ""] * len(rows)}
    dataset = examples_from_lists(parsed, kind)
    return dataset.enumerate().map(lambda i, e: {**e, "example_id": tf.cast(i, tf.int64)})

