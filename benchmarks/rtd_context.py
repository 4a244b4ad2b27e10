"""How fast does a discriminator learn to spot replacements from context? (prints AUC figures)

The quickstart's discriminator stays near chance once the generator samples like the corpus
(docs/quickstart-demo.md). This script isolates why. It fixes the replacements to draws from the
corpus' unigram distribution, so a token's identity says nothing and only its context can tell
a replacement, and trains three detectors on the same batches:

* ``ours``: electra-tf's discriminator (the quickstart's sizes), alone, with Adam;
* ``hf``: HuggingFace's ``ElectraForPreTraining`` with the same sizes (needs the test extra);
* ``window``: an MLP over the embeddings of the token and its two neighbours.

Every `--eval-every` steps it prints each detector's held-out AUC.

With `--evaluate RUN_DIR ...` it trains nothing: it scores the discriminators of finished
pretraining runs on the same kind of replacements, drawn in text of the held-out split. Unlike
a run's own held-out AUC, which is measured on its own generator's samples (a weaker generator
makes them easier), this score is comparable across runs: it measures how well the
discriminator judges a word by its context.

    python benchmarks/rtd_context.py --steps 800 --seq-length 32
    python benchmarks/rtd_context.py --evaluate runs/quickstart runs/other
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from electra_tf.config import load_config  # noqa: E402
from electra_tf.data import build_vocab, load_tokenizer, make_dataset  # noqa: E402
from electra_tf.models import build_networks  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
NUM_SPECIAL = 5     # [PAD] [UNK] [CLS] [SEP] [MASK] are never drawn as replacements
EVAL_BATCHES = 20


def unigram_batches(args, vocab_path: str | None = None, split: str = "train",
                    count: int | None = None, seq_length: int | None = None,
                    ) -> tuple[list[tuple[np.ndarray, ...]], int]:
    """`count` (default: steps + held-out) quickstart batches of `split` whose masked
    positions hold unigram draws: (ids, mask, segments, labels) tuples, and the vocabulary
    size. Without `vocab_path` the quickstart vocabulary is built once in the work dir."""
    config = load_config(os.path.join(REPO, "configs", "quickstart.yaml"),
                         [f"data.seq_length={seq_length or args.seq_length}"])
    if vocab_path is None:
        vocab_path = os.path.join(args.work_dir, "vocab.txt")
        if not os.path.exists(vocab_path):
            os.makedirs(args.work_dir, exist_ok=True)
            build_vocab(config.data, vocab_path, config.data.vocab_size)
    tokenizer = load_tokenizer(config.data, vocab_path)
    stream = iter(make_dataset(config, tokenizer, split=split, batch_size=args.batch_size))
    raw = [{k: v.numpy() for k, v in next(stream).items()}
           for _ in range(count or args.steps + EVAL_BATCHES)]
    vocab_size = tokenizer.vocab_size
    counts = np.bincount(np.concatenate([b["input_ids"][b["input_mask"] > 0] for b in raw]),
                         minlength=vocab_size).astype(np.float64)
    counts[:NUM_SPECIAL] = 0.0
    unigram = counts / counts.sum()
    rng = np.random.default_rng(args.seed)
    batches = []
    for b in raw:
        rows, cols = np.nonzero(b["masked_lm_weights"] > 0)
        positions = b["masked_lm_positions"][rows, cols]
        original = b["input_ids"].copy()
        original[rows, positions] = b["masked_lm_ids"][rows, cols]
        corrupted = original.copy()
        corrupted[rows, positions] = rng.choice(vocab_size, size=len(rows), p=unigram)
        labels = ((corrupted != original) & (b["input_mask"] > 0)).astype(np.float32)
        batches.append((corrupted, b["input_mask"], b["segment_ids"], labels))
    return batches, vocab_size


def auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by ranks (ties broken arbitrarily)."""
    ranks = np.empty(len(probs))
    ranks[np.argsort(probs)] = np.arange(1, len(probs) + 1)
    positives = labels.sum()
    negatives = len(labels) - positives
    return float((ranks[labels > 0].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def keras_detector(model_fn, variables_of, learning_rate: float):
    """(train_step, predict) for a Keras detector `model_fn(ids, mask, segments) -> logits`."""
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function
    def train_step(ids, mask, segments, labels):
        with tf.GradientTape() as tape:
            logits = model_fn(ids, mask, segments, True)
            weights = tf.cast(mask, tf.float32)
            loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits)
                                 * weights) / tf.reduce_sum(weights)
        variables = variables_of()
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    def predict(ids, mask, segments):
        return tf.sigmoid(model_fn(ids, mask, segments, False)).numpy()

    return train_step, predict


def ours(vocab_size: int, args):
    config = load_config(os.path.join(REPO, "configs", "quickstart.yaml"),
                         [f"model.vocab_size={vocab_size}"])
    disc = build_networks(config.model).discriminator
    return keras_detector(lambda i, m, s, training: disc(i, m, s, training=training),
                          lambda: disc.trainable_variables, args.learning_rate)


def window(vocab_size: int, args):
    embed = keras.layers.Embedding(vocab_size, 64)
    mlp = keras.Sequential([keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])

    def logits(ids, mask, segments, training):
        e = embed(ids)
        left = tf.pad(e[:, :-1], [[0, 0], [1, 0], [0, 0]])
        right = tf.pad(e[:, 1:], [[0, 0], [0, 1], [0, 0]])
        return tf.squeeze(mlp(tf.concat([left, e, right], -1)), -1)

    return keras_detector(logits, lambda: embed.trainable_variables + mlp.trainable_variables,
                          args.learning_rate)


def huggingface(vocab_size: int, args):
    import torch
    from transformers import ElectraConfig, ElectraForPreTraining

    torch.manual_seed(args.seed)
    model_config = load_config(os.path.join(REPO, "configs", "quickstart.yaml")).model
    model = ElectraForPreTraining(ElectraConfig(
        vocab_size=vocab_size, embedding_size=model_config.embedding_size,
        hidden_size=model_config.hidden_size, num_hidden_layers=model_config.num_layers,
        num_attention_heads=model_config.num_heads,
        intermediate_size=model_config.intermediate_size,
        max_position_embeddings=model_config.max_position_embeddings))
    optimizer = torch.optim.Adam(model.parameters(), args.learning_rate)

    def logits(ids, mask, segments):
        return model(input_ids=torch.tensor(ids, dtype=torch.long),
                     attention_mask=torch.tensor(mask),
                     token_type_ids=torch.tensor(segments, dtype=torch.long)).logits

    def train_step(ids, mask, segments, labels):
        model.train()
        weights = torch.tensor(mask, dtype=torch.float32)
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(
            logits(ids, mask, segments), torch.tensor(labels), reduction="none")
            * weights).sum() / weights.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def predict(ids, mask, segments):
        model.eval()
        with torch.no_grad():
            return torch.sigmoid(logits(ids, mask, segments)).numpy()

    return train_step, predict


DETECTORS = {"ours": ours, "hf": huggingface, "window": window}


def context_auc(predict, batches) -> tuple[float, int, int]:
    """(AUC, replaced tokens, real tokens) on unigram-replacement batches of a detector whose
    `predict(ids, mask, segments)` returns P(replaced) per token; padding is not scored."""
    real = np.concatenate([b[1] for b in batches]) > 0
    labels = np.concatenate([b[3] for b in batches])[real]
    probs = np.concatenate([predict(*b[:3]) for b in batches])[real]
    return auc(probs, labels), int(labels.sum()), len(labels)


def probabilities_of(discriminator):
    """`predict(ids, mask, segments)` -> P(replaced) per token, of an electra-tf
    discriminator."""
    return lambda ids, mask, segments: tf.sigmoid(
        discriminator(ids, mask, segments, training=False)).numpy()


def evaluate_runs(run_dirs: list[str], args) -> list[float]:
    """Prints and returns each run's discriminator AUC on unigram replacements in held-out
    text at the run's sequence length (drawn with `--seed`: runs with the same vocabulary
    and sequence length are scored on the same batches)."""
    from electra_tf.export import load_run
    from electra_tf.training.run_tokenizer import load_run_tokenizer

    cache: dict[tuple, list] = {}
    scores = []
    for run_dir in run_dirs:
        config, networks, checkpoint = load_run(run_dir)
        if networks.discriminator is None:
            raise SystemExit(f"{run_dir} is an MLM run: it has no discriminator to score")
        vocab_path = load_run_tokenizer(config, run_dir)[0].data.vocab_file
        if vocab_path is None:
            raise SystemExit(f"{run_dir} uses a SentencePiece model: only WordPiece runs "
                             "(the quickstart's) are scored")
        with tf.io.gfile.GFile(vocab_path) as f:
            key = (f.read(), config.data.seq_length)
        if key not in cache:
            cache[key] = unigram_batches(args, vocab_path, "eval", EVAL_BATCHES,
                                         config.data.seq_length)[0]
        score, replaced, tokens = context_auc(probabilities_of(networks.discriminator),
                                              cache[key])
        print(f"{run_dir}  ({os.path.basename(str(checkpoint))}): unigram-replacement AUC "
              f"{score:.3f} on {replaced} replaced of {tokens} held-out tokens", flush=True)
        scores.append(score)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="/tmp/electra_tf_rtd_context",
                        help="where the quickstart vocabulary is built once")
    parser.add_argument("--evaluate", nargs="+", metavar="RUN_DIR",
                        help="train nothing: score these pretraining runs' discriminators")
    args = parser.parse_args()
    if args.evaluate:
        evaluate_runs(args.evaluate, args)
        return

    batches, vocab_size = unigram_batches(args)
    held_out, train = batches[:EVAL_BATCHES], batches[EVAL_BATCHES:]
    real = sum(int(b[1].sum()) for b in held_out)
    replaced = sum(int(b[3].sum()) for b in held_out)
    print(f"seq_length {args.seq_length}, batch {args.batch_size}, lr {args.learning_rate}; "
          f"held-out replaced rate {replaced / real:.3f}; AUC 0.5 = chance")
    for name in args.detectors:
        train_step, predict = DETECTORS[name](vocab_size, args)
        start = time.time()
        for step, batch in enumerate(train, 1):
            train_step(*batch)
            if step % args.eval_every == 0 or step == len(train):
                score = context_auc(predict, held_out)[0]
                print(f"{name:<7} step {step:>6}  held-out AUC {score:.3f}  "
                      f"({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
