"""Does mixed_bfloat16 train like float32? Loss curves of the tiny preset, 300 steps each way.

    .venv/bin/python benchmarks/bf16_curve.py [--steps 300] [--batch 32] [--seq 64]

Both runs use the project's `TrainStep` (default strategy, no XLA), the same initial weights
(same seed), the same synthetic batches with a learnable pattern (tests/synthetic.py: token i+1
follows token i) and the same sampling seeds, with dropout on as in pretraining. The raw
per-step losses are noisy, so each curve is smoothed with a centred moving average (--window
steps) before comparing: the figure printed is max_t |bf16(t) - fp32(t)| / fp32(t) over the
smoothed curves. The bar is 2%.

With `--seeds N` each curve is the mean over N seeds (weights, dropout, sampling), the same N
for both precisions: on the synthetic task the discriminator "takes off" around step 150-250
at a moment that tiny numerical differences shift, so single-seed curves of *two float32 runs*
already differ by several percent there; averaging compares the precisions, not the seeds.
The compared run uses seeds second_seed .. second_seed + N - 1.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from synthetic import dataset_fn, synthetic_examples  # noqa: E402

from electra_tf.config import RunConfig, TrainConfig, model_preset  # noqa: E402
from electra_tf.models import build_networks  # noqa: E402
from electra_tf.pretraining import PretrainingTask  # noqa: E402
from electra_tf.training.optimizer import create_optimizer  # noqa: E402
from electra_tf.training.step import TrainStep  # noqa: E402


def loss_curve(precision: str, args, seed: int = 0) -> np.ndarray:
    config = RunConfig(model=model_preset("tiny", vocab_size=args.vocab))
    config.data.seq_length = args.seq
    config.train = TrainConfig(batch_size=args.batch, precision=precision, steps=args.steps,
                               warmup_steps=args.steps // 10, learning_rate=args.lr,
                               strategy="default", jit_compile=False, seed=seed)
    config.validate()
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.train.seed)
    networks = build_networks(config.model, "electra", precision)
    optimizer = create_optimizer(config.train, networks.trainable_variables, precision)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    train = TrainStep(strategy, PretrainingTask(config), networks, optimizer, config.train,
                      step)
    examples = synthetic_examples(args.examples, args.seq, args.vocab, config.max_predictions)
    iterator = iter(strategy.distribute_datasets_from_function(
        dataset_fn(examples, args.batch)))
    losses = []
    for _ in range(args.steps):
        loss, _ = train.train(iterator, 1)
        losses.append(float(loss))
    return np.array(losses)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average; the window shrinks at both ends."""
    half = window // 2
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    out = np.empty_like(values)
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out[i] = (cumulative[hi] - cumulative[lo]) / (hi - lo)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--examples", type=int, default=2048)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--window", type=int, default=21)
    p.add_argument("--second", default="mixed_bfloat16",
                   help="precision of the compared run (float32 with --second-seed 1 shows "
                        "how far two float32 runs drift apart)")
    p.add_argument("--second-seed", type=int, default=0,
                   help="first train.seed (weights, dropout, sampling) of the compared run")
    p.add_argument("--seeds", type=int, default=1,
                   help="average each precision's curve over this many seeds")
    a = p.parse_args(argv)
    fp32 = np.mean([loss_curve("float32", a, seed) for seed in range(a.seeds)], axis=0)
    bf16 = np.mean([loss_curve(a.second, a, a.second_seed + k) for k in range(a.seeds)], axis=0)
    seeds = f"seeds {a.second_seed}..{a.second_seed + a.seeds - 1}" if a.seeds > 1 else \
        f"seed {a.second_seed}"
    print(f"compared run: {a.second}, {seeds} (float32: seeds 0..{a.seeds - 1})")
    s32, s16 = smooth(fp32, a.window), smooth(bf16, a.window)
    deviation = np.abs(s16 - s32) / np.abs(s32)
    worst = int(np.argmax(deviation))
    for t in sorted({0, 49, 99, 149, 199, 249, a.steps - 1} & set(range(a.steps))):
        print(f"step {t + 1:4d}: float32 {s32[t]:.4f}  {a.second} {s16[t]:.4f}  "
              f"rel. dev. {deviation[t]:.2%}")
    print(f"raw loss first/last: float32 {fp32[0]:.3f} -> {fp32[-1]:.3f}, "
          f"{a.second} {bf16[0]:.3f} -> {bf16[-1]:.3f}")
    print(f"max relative deviation of the smoothed curves (window {a.window}): "
          f"{deviation.max():.2%} at step {worst + 1} (bar: 2%)")


if __name__ == "__main__":
    main()
