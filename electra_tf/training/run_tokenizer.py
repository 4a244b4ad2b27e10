"""The run's tokenizer: the configured vocabulary, the one that came with `train.init_checkpoint`,
or a WordPiece vocabulary learned from the corpus into the run directory.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from electra_tf.config import ConfigError, RunConfig, read_saved_config

log = logging.getLogger(__name__)


def checkpoint_vocab(path: str) -> str | None:
    """The vocabulary that came with a pretrained checkpoint, if one is found: the one of an
    electra-tf run (its directory, checkpoints/ or ckpt-N), else a vocab.txt beside the
    checkpoint (Google's releases and HuggingFace directories hold one; our HuggingFace export
    keeps it in discriminator/)."""
    parent = os.path.dirname(path.rstrip("/"))
    for run_dir in (path, parent, os.path.dirname(parent)):
        saved = os.path.join(run_dir, "config.yaml")
        if run_dir and tf.io.gfile.exists(saved):
            vocab = read_saved_config(saved).data.vocab_file
            if vocab and tf.io.gfile.exists(vocab):
                return vocab
    for folder in (path, os.path.join(path, "discriminator"), parent):
        candidate = os.path.join(folder, "vocab.txt")
        if folder and tf.io.gfile.exists(candidate):
            return candidate
    return None


def prepare_tokenizer(config: RunConfig):
    """Loads the run's tokenizer, building a WordPiece vocab into the run dir if none is set.

    A vocab the run built itself, or took from `train.init_checkpoint`, sets
    `model.vocab_size`; a given `data.vocab_file` must match it.
    """
    from electra_tf.data import build_vocab, load_tokenizer

    data = config.data
    from_checkpoint = False
    if data.tokenizer == "wordpiece" and not data.vocab_file and config.train.init_checkpoint:
        # Pretrained weights only make sense with the vocabulary they were trained with.
        data.vocab_file = checkpoint_vocab(config.train.init_checkpoint)
        if data.vocab_file is None:
            raise ConfigError(
                f"train.init_checkpoint is {config.train.init_checkpoint} but data.vocab_file is "
                "not set and no vocab.txt was found beside the checkpoint: set data.vocab_file "
                "to the vocabulary the checkpoint was trained with")
        log.info("data.vocab_file: using %s, the vocabulary of train.init_checkpoint",
                 data.vocab_file)
        from_checkpoint = True
    if data.tokenizer == "wordpiece" and not data.vocab_file:
        path = os.path.join(config.train.run_dir, "vocab.txt")
        if not tf.io.gfile.exists(path):
            log.info("no data.vocab_file: building a %d-token WordPiece vocab into %s",
                     data.vocab_size, path)
            tf.io.gfile.makedirs(config.train.run_dir)
            build_vocab(data, path, data.vocab_size)
        data.vocab_file = path
        tokenizer = load_tokenizer(data, path)
        config.model.vocab_size = tokenizer.vocab_size
    else:
        tokenizer = load_tokenizer(data)
        if from_checkpoint:
            config.model.vocab_size = tokenizer.vocab_size
    if tokenizer.vocab_size != config.model.vocab_size:
        raise ConfigError(
            f"model.vocab_size is {config.model.vocab_size} but the tokenizer "
            f"({tokenizer.vocab_path}) has {tokenizer.vocab_size} tokens; set "
            f"--set model.vocab_size={tokenizer.vocab_size} (or model.vocab_size in the config)")
    return tokenizer
