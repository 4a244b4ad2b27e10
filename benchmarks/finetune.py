"""Fine-tuning speed, and serving speed of the exported model against `transformers`' pipeline.

    .venv/bin/python benchmarks/finetune.py                       # ELECTRA-Small sizes, seq 128
    .venv/bin/python benchmarks/finetune.py --preset tiny --train-steps 40 --rounds 2

What is measured, in one process, on one model (random weights at the preset's sizes, a
synthetic WordPiece vocabulary, the synthetic context classification task):

* fine-tuning examples/s: `Trainer(FinetuneTask)` as `electra-tf finetune` runs it (AdamW,
  layer-wise decay, clipping, the tf.data pipeline with in-graph tokenization); the time of
  `--train-steps` steps after a warm-up run of the same length has compiled the step.
* serving: the raw-text SavedModel (export.py; tokenization in the graph), loaded with
  `tf.saved_model.load`, against `transformers.pipeline("text-classification")` on our HF
  export of the same weights (PyTorch, eager attention, CPU). Latency: median of single-text
  calls (batch 1); throughput: texts/s over calls of 64 texts (batch 64; the pipeline gets
  `batch_size=64`). Ours and theirs alternate for `--rounds` rounds; figures are medians over
  rounds, and the ratios are ours relative to theirs (latency: theirs / ours, so > 1 means
  ours is faster; throughput: ours / theirs).

Both frameworks use the machine's cores as they default to; the figures depend on the load of
the machine, so compare ratios measured in the same run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from electra_tf.data.tokenization import SPECIAL_TOKENS  # noqa: E402
from electra_tf.finetune.synthetic import (  # noqa: E402
    SYNTHETIC_WORDS,
    synthetic_context_examples,
    write_synthetic_task,
)


def write_vocab(path: str, size: int) -> str:
    """The specials, the synthetic task's words, then filler pieces up to `size` tokens."""
    tokens = list(SPECIAL_TOKENS) + list(SYNTHETIC_WORDS)
    tokens += [f"w{i}" for i in range(max(0, size - len(tokens)))]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return path


def make_spec(root: str, args):
    import dataclasses

    from electra_tf.finetune.config import FinetuneSpec

    data = write_synthetic_task("classification", os.path.join(root, "data"), train=2000,
                                validation=64, test=64)
    data_section = {k: v for k, v in dataclasses.asdict(data).items() if v is not None}
    return FinetuneSpec({
        "model": {"preset": args.preset},
        "task": {"kind": "classification", "init": "none",
                 "vocab_file": write_vocab(os.path.join(root, "vocab.txt"), args.vocab_size)},
        "data": {**data_section, "seq_length": args.seq_length},
        "train": {"run_dir": os.path.join(root, "run"), "steps": 2 * args.train_steps,
                  "batch_size": args.batch_size, "log_every": args.train_steps,
                  "checkpoint_every": 2 * args.train_steps,
                  "eval_every": 0}}, "benchmark")


def time_finetuning(spec, args) -> tuple[float, object]:
    """Examples/s of the second half of the run (the first half compiles and warms up)."""
    from electra_tf.finetune.setup import prepare_task
    from electra_tf.training.trainer import Trainer

    task = prepare_task(spec)
    trainer = Trainer(task)
    trainer.train(stop_at=args.train_steps)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return args.train_steps * args.batch_size / seconds, task.config.train.run_dir


def _median_call(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def serving_figures(saved_model_dir: str, hf_dir: str, texts: list[str], args) -> dict:
    import torch
    import transformers

    model = tf.saved_model.load(saved_model_dir)
    serve = model.signatures["serving_default"]
    pipe = transformers.pipeline("text-classification", model=hf_dir, tokenizer=hf_dir,
                                 device="cpu", truncation=True, max_length=args.seq_length)
    one, batch = texts[:1], texts[:64]
    ours_one = lambda: serve(text=tf.constant(one))["probabilities"].numpy()
    ours_batch = lambda: serve(text=tf.constant(batch))["probabilities"].numpy()
    hf_one = lambda: pipe(one[0])
    hf_batch = lambda: pipe(batch, batch_size=64)
    for fn in (ours_one, ours_batch, hf_one, hf_batch):  # warm-up: tracing, first allocations
        fn()
    rounds = {"ours_latency": [], "hf_latency": [], "ours_throughput": [], "hf_throughput": []}
    with torch.inference_mode():
        for _ in range(args.rounds):
            rounds["ours_latency"].append(_median_call(ours_one, args.repeats))
            rounds["hf_latency"].append(_median_call(hf_one, args.repeats))
            rounds["ours_throughput"].append(64 / _median_call(ours_batch, args.batch_repeats))
            rounds["hf_throughput"].append(64 / _median_call(hf_batch, args.batch_repeats))
    return {k: statistics.median(v) for k, v in rounds.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "base", "large"])
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=30522)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="batch-1 calls per round")
    parser.add_argument("--batch-repeats", type=int, default=3, help="batch-64 calls per round")
    args = parser.parse_args(argv)

    from electra_tf.finetune.export import export_finetuned

    with tempfile.TemporaryDirectory() as root:
        spec = make_spec(root, args)
        examples_per_second, run_dir = time_finetuning(spec, args)
        saved_model = export_finetuned(run_dir, os.path.join(root, "saved_model"),
                                       which="latest")
        hf_dir = export_finetuned(run_dir, os.path.join(root, "hf"), fmt="huggingface",
                                  which="latest")
        texts = [e["text"] for e in synthetic_context_examples("classification", 64, 1)]
        figures = serving_figures(saved_model, hf_dir, texts, args)
    print(f"model: {args.preset}, seq_length {args.seq_length}, vocab {args.vocab_size}; "
          f"{os.cpu_count()} CPUs")
    print(f"fine-tuning: {examples_per_second:.1f} examples/s "
          f"(batch {args.batch_size}, {args.train_steps} steps after as many warm-up steps)")
    print(f"serving latency, batch 1:   SavedModel {1e3 * figures['ours_latency']:.1f} ms, "
          f"transformers pipeline {1e3 * figures['hf_latency']:.1f} ms, "
          f"speed-up x{figures['hf_latency'] / figures['ours_latency']:.2f}")
    print(f"serving throughput, batch 64: SavedModel {figures['ours_throughput']:.1f} texts/s, "
          f"transformers pipeline {figures['hf_throughput']:.1f} texts/s, "
          f"ratio x{figures['ours_throughput'] / figures['hf_throughput']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
