"""A run directory for the export tests: a tiny config, a word-level vocabulary, and
checkpoints of random networks moved away from their initialisers (so a missing restore shows)."""

import os

import numpy as np
import tensorflow as tf

from electra_tf.config import (
    DataConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
    model_preset,
    save_config,
)
from electra_tf.models import build_networks
from electra_tf.training.checkpoints import model_checkpoint

WORDS = ("the a of to and in is was chef cooked ate meal dog cat sat on mat water body large "
         "person who works hospital sleeps man went store sky sun paper . , !").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing"]
SEQ = 16
MAX_PREDICTIONS = 3


def perturb(networks, rng, scale):
    for variable in networks.trainable_variables:
        noise = rng.normal(0.0, scale, variable.shape).astype(np.float32)
        variable.assign(variable.numpy() + noise)


def make_run_dir(path, steps_and_scales=((3, 0.05), (7, 0.05))):
    """A run dir with config.yaml, vocab.txt and checkpoints of random networks at the given
    steps. Returns (config, networks in the state of the last step, {step: weight arrays})."""
    os.makedirs(path, exist_ok=True)
    vocab_path = os.path.join(path, "vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    config = RunConfig(
        model=model_preset("tiny", vocab_size=len(VOCAB), dropout=0.0, attention_dropout=0.0),
        objective=ObjectiveConfig(max_predictions=MAX_PREDICTIONS),
        data=DataConfig(vocab_file=vocab_path, seq_length=SEQ, vocab_size=len(VOCAB)),
        train=TrainConfig(run_dir=str(path))).validate()
    save_config(config, os.path.join(path, "config.yaml"))
    networks = build_networks(config.model)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model_checkpoint(networks)),
                                         os.path.join(path, "checkpoints"), max_to_keep=5)
    rng = np.random.default_rng(0)
    weights = {}
    for step, scale in steps_and_scales:
        # Away from the initialisers, so a missing restore cannot go unnoticed.
        perturb(networks, rng, scale)
        manager.save(checkpoint_number=step)
        weights[step] = [v.numpy() for v in networks.trainable_variables]
    return config, networks, weights
