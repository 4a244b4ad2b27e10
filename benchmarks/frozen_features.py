"""How informative are an encoder's frozen features? Linear probes on a fine-tuning task.

    python benchmarks/frozen_features.py runs/quickstart none \
        [--config configs/finetune/quickstart.yaml]

For each encoder (a `task.init`: a pretraining run, an HF directory ...; `none` is a random
initialisation of `--preset` with `--vocab`), the encoder's final hidden states of the task's
training and validation examples are computed without fine-tuning, as the [CLS] vector and as
the mean over the sequence. A ridge-regression probe (one-hot targets, standardised features)
is fitted on the training split and scored on validation (accuracy; classification tasks only).
"Mean cosine" is the mean pairwise cosine similarity of the validation features: near 1, every
example gets nearly the same vector, and a head must first learn to remove the common part.
Used to tell "the features hold nothing" apart from "fine-tuning cannot use them yet".
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def features(task, model, split: str, limit: int):
    """([CLS] features, mean-pooled features, labels) of the first `limit` examples."""
    cls, mean, labels = [], [], []
    for batch in task.features(task.examples(split).take(limit), 64, training=False):
        hidden = model.encode(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                              training=False).numpy()
        mask = batch["input_mask"].numpy()[..., None].astype(np.float32)
        cls.append(hidden[:, 0])
        mean.append((hidden * mask).sum(1) / mask.sum(1))
        labels.append(batch["label"].numpy())
    return np.concatenate(cls), np.concatenate(mean), np.concatenate(labels)


def ridge_accuracy(train_x, train_y, test_x, test_y, classes: int, ridge: float = 1e-3) -> float:
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mu) / sd, (test_x - mu) / sd
    weights = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]),
                              a.T @ np.eye(classes)[train_y])
    return float(((b @ weights).argmax(1) == test_y).mean())


def mean_cosine(x) -> float:
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float((unit @ unit.T).mean())


def main() -> None:
    from electra_tf.finetune.config import load_spec
    from electra_tf.finetune.init import load_encoder
    from electra_tf.finetune.setup import prepare_task

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inits", nargs="+", help="encoders (task.init values, or none)")
    parser.add_argument("--config", default="configs/finetune/quickstart.yaml")
    parser.add_argument("--preset", default="tiny", help="sizes of the `none` encoder")
    parser.add_argument("--vocab", default="runs/quickstart/vocab.txt",
                        help="vocabulary of the `none` encoder")
    parser.add_argument("--train", type=int, default=3000, help="training examples probed")
    parser.add_argument("--validation", type=int, default=1200)
    args = parser.parse_args()
    import keras

    keras.utils.set_random_seed(0)  # the `none` encoder's draw
    print(f"{'encoder':32} {'features':8} {'probe accuracy':>14} {'mean cosine':>11}")
    for init in args.inits:
        overrides = [f"task.init={init}", "train.run_dir=/tmp/frozen_features_unused"]
        if init == "none":
            overrides += [f"model.preset={args.preset}", f"task.vocab_file={args.vocab}"]
        task = prepare_task(load_spec(args.config, overrides))
        model = task.build_model("float32")
        if init != "none":
            load_encoder(model, init)
        train = features(task, model, "train", args.train)
        valid = features(task, model, "validation", args.validation)
        for name, i in (("[CLS]", 0), ("mean", 1)):
            accuracy = ridge_accuracy(train[i], train[2], valid[i], valid[2],
                                      task.config.task.num_labels)
            print(f"{init:32} {name:8} {accuracy:14.3f} {mean_cosine(valid[i]):11.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
