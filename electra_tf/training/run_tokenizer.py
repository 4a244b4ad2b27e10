"""The run's vocabulary: the configured one, the one that came with `train.init_checkpoint`,
or a WordPiece vocabulary learned from the corpus into the run directory; and, for a saved run,
the vocabulary it trained with, found even if the run directory moved.

Both return a *resolved* config (with `data.vocab_file` and `model.vocab_size` filled in) next
to the tokenizer: the config given is never changed.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import tensorflow as tf

from electra_tf.config import ConfigError, RunConfig, read_saved_config
from electra_tf.errors import MissingFileError
from electra_tf.training.run_dir import CONFIG_NAME, VOCAB_NAME

log = logging.getLogger(__name__)


def checkpoint_vocab(path: str) -> str | None:
    """The vocabulary that came with a pretrained checkpoint, if one is found: the one of an
    electra-tf run (its directory, checkpoints/ or ckpt-N), else a vocab.txt beside the
    checkpoint (Google's releases and HuggingFace directories hold one; our HuggingFace export
    keeps it in discriminator/)."""
    parent = os.path.dirname(path.rstrip("/"))
    for run_dir in (path, parent, os.path.dirname(parent)):
        saved = os.path.join(run_dir, CONFIG_NAME)
        if run_dir and tf.io.gfile.exists(saved):
            vocab = read_saved_config(saved).data.vocab_file
            if vocab and tf.io.gfile.exists(vocab):
                return vocab
    for folder in (path, os.path.join(path, "discriminator"), parent):
        candidate = os.path.join(folder, VOCAB_NAME)
        if folder and tf.io.gfile.exists(candidate):
            return candidate
    return None


def check_vocab_size(tokenizer, model_vocab_size: int, fix: str) -> None:
    """The one check that a model's embedding table fits its tokenizer."""
    if tokenizer.vocab_size != model_vocab_size:
        raise ConfigError(
            f"model.vocab_size is {model_vocab_size} but the tokenizer ({tokenizer.vocab_path}) "
            f"has {tokenizer.vocab_size} tokens; {fix}")


def _with(config: RunConfig, *, vocab_file: str | None = None, vocab_size: int | None = None,
          sentencepiece_model: str | None = None) -> RunConfig:
    data, model = config.data, config.model
    if vocab_file is not None:
        data = dataclasses.replace(data, vocab_file=vocab_file)
    if sentencepiece_model is not None:
        data = dataclasses.replace(data, sentencepiece_model=sentencepiece_model)
    if vocab_size is not None:
        model = dataclasses.replace(model, vocab_size=vocab_size)
    return dataclasses.replace(config, data=data, model=model)


def resolve_tokenizer(config: RunConfig):
    """(resolved config, tokenizer) for a run about to train, building a WordPiece vocab into
    the run dir if none is set. A vocab the run built itself, or took from
    `train.init_checkpoint`, sets `model.vocab_size`; a given `data.vocab_file` must match it."""
    from electra_tf.data import build_vocab, load_tokenizer

    data = config.data
    if data.tokenizer == "wordpiece" and not data.vocab_file and config.train.init_checkpoint:
        # Pretrained weights only make sense with the vocabulary they were trained with.
        vocab = checkpoint_vocab(config.train.init_checkpoint)
        if vocab is None:
            raise ConfigError(
                f"train.init_checkpoint is {config.train.init_checkpoint} but data.vocab_file is "
                "not set and no vocab.txt was found beside the checkpoint: set data.vocab_file "
                "to the vocabulary the checkpoint was trained with")
        log.info("data.vocab_file: using %s, the vocabulary of train.init_checkpoint", vocab)
        tokenizer = load_tokenizer(data, vocab)
        config = _with(config, vocab_file=vocab, vocab_size=tokenizer.vocab_size)
    elif data.tokenizer == "wordpiece" and not data.vocab_file:
        path = os.path.join(config.train.run_dir, VOCAB_NAME)
        if not tf.io.gfile.exists(path):
            log.info("no data.vocab_file: building a %d-token WordPiece vocab into %s",
                     data.vocab_size, path)
            tf.io.gfile.makedirs(config.train.run_dir)
            build_vocab(data, path, data.vocab_size)
        tokenizer = load_tokenizer(data, path)
        config = _with(config, vocab_file=path, vocab_size=tokenizer.vocab_size)
    else:
        tokenizer = load_tokenizer(data)
    check_vocab_size(tokenizer, config.model.vocab_size,
                     f"set --set model.vocab_size={tokenizer.vocab_size} (or model.vocab_size "
                     "in the config)")
    return config, tokenizer


def _find(path: str | None, run_dir: str, what: str, field_name: str) -> str | None:
    """`path` as saved in the config, else the same file name inside the run dir (runs are
    often moved, and relative paths are relative to where training ran)."""
    if path is None:
        return None
    candidates = [path, os.path.join(run_dir, os.path.basename(path))]
    for candidate in candidates:
        if tf.io.gfile.exists(candidate):
            return candidate
    raise MissingFileError(
        f"the run's {what} ({field_name}: {path}) was not found, nor in {run_dir}; copy it "
        f"to {candidates[1]} or fix {field_name} in {os.path.join(run_dir, CONFIG_NAME)}")


def load_run_tokenizer(config: RunConfig, run_dir: str):
    """(config with the vocabulary's found path, tokenizer) of a saved run."""
    from electra_tf.data.tokenization import load_tokenizer

    data = config.data
    if data.tokenizer == "wordpiece":
        vocab = _find(data.vocab_file or os.path.join(run_dir, VOCAB_NAME), run_dir,
                      "WordPiece vocab", "data.vocab_file")
        config = _with(config, vocab_file=vocab)
    else:
        config = _with(config, sentencepiece_model=_find(
            data.sentencepiece_model, run_dir, "SentencePiece model",
            "data.sentencepiece_model"))
    tokenizer = load_tokenizer(config.data, config.data.vocab_file)
    check_vocab_size(tokenizer, config.model.vocab_size,
                     f"point data.vocab_file in {os.path.join(run_dir, CONFIG_NAME)} at the "
                     "vocab the run trained with")
    return config, tokenizer
