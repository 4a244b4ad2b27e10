"""Where a fine-tuning run's encoder comes from (`task.init`), and loading it.

`task.init` is one of:

    none                   random initialisation (the tokenizer vocabulary must be given)
    a pretraining run      its directory (or checkpoints/ or a ckpt-N prefix): the
                           discriminator's encoder, or for an `objective: mlm` run its MLM encoder
    a fine-tuning run      its directory: its encoder (the head starts fresh)
    a HuggingFace dir      ElectraForPreTraining / ElectraForMaskedLM / ...ForSequence- or
                           ...ForTokenClassification (config.json + model.safetensors), or our
                           pretraining export with discriminator/ and generator/
    a TF1 checkpoint       Google's released checkpoints (a prefix, or a directory with a
                           `checkpoint` file)

Only the encoder is taken (embeddings, embeddings_project, transformer layers); every one of its
variables must be found with the right shape (a one-line `CheckpointMismatchError` otherwise).
The other networks of a checkpoint (generator, pretraining heads) are ignored.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import tensorflow as tf
import yaml

from electra_tf.config import ConfigError, ModelConfig
from electra_tf.errors import MissingFileError
from electra_tf.models.assign import CheckpointMismatchError

log = logging.getLogger(__name__)

NONE = "none"
CONFIG_NAME = "config.yaml"


def _known_run_dir(init: str) -> str:
    """The run directory of an `init` that init_kind found to be a run."""
    run_dir = _run_dir_of(init)
    assert run_dir is not None, f"{init} is not a run"
    return run_dir


def _run_dir_of(path: str) -> str | None:
    """The run directory that `path` is (RUN), or is part of (RUN/checkpoints,
    RUN/checkpoints/ckpt-N), or None."""
    path = path.rstrip("/")
    parent = os.path.dirname(path)
    candidates = [path]
    if os.path.basename(path) == "checkpoints":
        candidates.append(parent)
    elif os.path.basename(parent) == "checkpoints" and os.path.basename(path).startswith("ckpt-"):
        candidates.append(os.path.dirname(parent))
    for candidate in candidates:
        if candidate and tf.io.gfile.exists(os.path.join(candidate, CONFIG_NAME)):
            return candidate
    return None


def _saved_sections(run_dir: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(run_dir, CONFIG_NAME)) as f:
        return yaml.safe_load(f.read()) or {}


def init_kind(init: str) -> str:
    """"none", "finetune_run", "pretraining_run", "huggingface" or "tf1" (checked to exist)."""
    from electra_tf.interop import is_huggingface_dir

    if init == NONE:
        return NONE
    if not tf.io.gfile.exists(init) and not tf.io.gfile.glob(init + ".*"):
        raise MissingFileError(
            f"task.init {init} does not exist; give a pretraining run directory, a HuggingFace "
            "ELECTRA directory or a TF1 checkpoint prefix, or `none` for random initialisation")
    run_dir = _run_dir_of(init)
    if run_dir is not None:
        return "finetune_run" if "task" in _saved_sections(run_dir) else "pretraining_run"
    if is_huggingface_dir(init):
        return "huggingface"
    return "tf1"


def _hf_is_mlm(path: str) -> bool:
    """A single ElectraForMaskedLM directory (an `objective: mlm` model)."""
    config_path = os.path.join(path, "config.json")
    if not tf.io.gfile.exists(config_path):
        return False  # our export, with discriminator/ and generator/
    with tf.io.gfile.GFile(config_path) as f:
        architectures = "".join(json.loads(f.read()).get("architectures") or ())
    return "MaskedLM" in architectures


def init_model_config(init: str, base: ModelConfig) -> ModelConfig:
    """The encoder sizes of `init` (`base` supplies what a checkpoint does not record, such as
    dropout); `base` itself for `none`."""
    from electra_tf.config import read_saved_config
    from electra_tf.interop import model_config_from_pretrained

    kind = init_kind(init)
    if kind == NONE:
        return base
    if kind == "pretraining_run":
        return read_saved_config(os.path.join(_known_run_dir(init), CONFIG_NAME)).model
    if kind == "finetune_run":
        from electra_tf.finetune.config import read_finetune_config

        return read_finetune_config(os.path.join(_known_run_dir(init), CONFIG_NAME)).model
    try:
        return model_config_from_pretrained(init, base)
    except FileNotFoundError as e:
        raise MissingFileError(f"task.init: {e}") from None


def init_vocab(init: str) -> str | None:
    """The vocabulary that came with `init` (see run_tokenizer.checkpoint_vocab)."""
    from electra_tf.training.run_tokenizer import checkpoint_vocab

    if init == NONE:
        return None
    run_dir = _run_dir_of(init)
    if run_dir is not None:
        saved = (_saved_sections(run_dir).get("data") or {})
        vocab = saved.get("vocab_file")
        for candidate in (vocab, os.path.join(run_dir, "vocab.txt")):
            if candidate and tf.io.gfile.exists(candidate):
                return candidate
            if candidate and tf.io.gfile.exists(os.path.join(run_dir,
                                                             os.path.basename(candidate))):
                return os.path.join(run_dir, os.path.basename(candidate))
    return checkpoint_vocab(init)


def _source_encoder(init: str, kind: str):
    """(embeddings, encoder) of the pretrained network at `init`, with its weights loaded."""
    from electra_tf.interop import load_pretrained, model_config_from_pretrained
    from electra_tf.models import build_networks

    if kind == "pretraining_run":
        from electra_tf.export import load_run

        _, networks, _ = load_run(_known_run_dir(init))
        net = networks.encoder_network
        return net.embeddings, net.encoder, f"run {init}"
    if kind == "finetune_run":
        from electra_tf.finetune.config import read_finetune_config
        from electra_tf.finetune.model import build_model, model_checkpoint
        from electra_tf.training.checkpoints import CHECKPOINT_DIR

        run_dir = _known_run_dir(init)
        saved = read_finetune_config(os.path.join(run_dir, CONFIG_NAME))
        num_labels = saved.task.num_labels
        assert num_labels is not None, "a fine-tuning run saves its resolved task.num_labels"
        model = build_model(saved.model, saved.task.kind, num_labels)
        prefix = tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR))
        if prefix is None:
            raise MissingFileError(f"task.init {init}: the fine-tuning run has no checkpoint")
        tf.train.Checkpoint(model=model_checkpoint(model)).restore(prefix).expect_partial()
        return model.embeddings, model.encoder, f"fine-tuning run {prefix}"
    mlm = kind == "huggingface" and _hf_is_mlm(init)
    config = model_config_from_pretrained(init, ModelConfig())
    networks = build_networks(config, "mlm" if mlm else "electra")
    # Generators and pretraining heads may be absent (a released discriminator, an HF
    # classification model): load what is there, then insist on the encoder below.
    summary = load_pretrained(networks, init, allow_partial=True)
    net = networks.encoder_network
    from electra_tf.models.names import embeddings_variables, encoder_variables

    wanted = set(embeddings_variables(net.embeddings)) | set(encoder_variables("electra",
                                                                               net.encoder))
    missing = sorted(wanted - set(summary.loaded))
    if missing:
        raise CheckpointMismatchError(
            f"task.init {init} lacks {len(missing)} encoder variables (e.g. {missing[0]}); "
            "it is not an ELECTRA encoder checkpoint")
    return net.embeddings, net.encoder, summary.source


def load_encoder(model, init: str, word_norm: float | None = None) -> str:
    """Assigns `model`'s encoder from `init`; returns a description of the source. With
    `word_norm`, the word-embedding rows are then rescaled to that norm (`rescale_rows`)."""
    from electra_tf.models.names import embeddings_variables, encoder_variables

    kind = init_kind(init)
    if kind == NONE:
        raise ConfigError("task.init is none: there is nothing to load")
    embeddings, encoder, source = _source_encoder(init, kind)
    theirs = embeddings_variables(embeddings)
    theirs.update(encoder_variables("electra", encoder))
    ours = model.encoder_variables()
    problems = [name for name, v in ours.items()
                if name not in theirs or tuple(theirs[name].shape) != tuple(v.shape)]
    if problems or set(theirs) - set(ours):
        raise CheckpointMismatchError(
            f"task.init {init}: the encoder does not match the model config ({len(problems)} "
            f"variables missing or shaped differently, e.g. {(problems or ['?'])[0]}); leave "
            "the model section's sizes unset so they are read from the checkpoint")
    for name, variable in ours.items():
        variable.assign(np.asarray(theirs[name].numpy()).astype(variable.dtype))
    log.info("initialised the encoder (%d variables) from %s", len(ours), source)
    if word_norm is not None:
        rescale_rows(model.embeddings.word_embeddings, word_norm)
        source += f", word rows rescaled to norm {word_norm:g}"
        log.info("rescaled every word-embedding row to L2 norm %g", word_norm)
    return source


def rescale_rows(table, norm: float) -> None:
    """Sets every row of the 2-D variable `table` to L2 norm `norm`, keeping its direction
    (an all-zero row stays zero)."""
    rows = table.numpy()
    lengths = np.linalg.norm(rows, axis=1, keepdims=True)
    table.assign((rows * (norm / np.maximum(lengths, 1e-12))).astype(rows.dtype))
