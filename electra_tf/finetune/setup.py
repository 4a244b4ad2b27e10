"""From a fine-tuning spec (YAML + --set) to a ready `FinetuneTask`: the facts a config needs.

    spec = load_spec("configs/finetune/sst2.yaml", ["task.epochs=2"])
    task = prepare_task(spec)          # reads the checkpoint's sizes, the tokenizer, the
                                       # training split (size, label set); saves labels.json
    Trainer(task).train()

The tokenizer is the pretrained model's own: its type, vocabulary and case handling come from
`task.init` (a pretraining run's data section, a fine-tuning run's task section, the
vocab.txt / tokenizer_config.json of an HF directory, the vocab.txt beside a TF1 checkpoint);
`task.vocab_file` and friends override them and are required for `task.init: none`.
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from electra_tf.config import ConfigError, DataConfig
from electra_tf.config.loading import merge
from electra_tf.finetune.config import FinetuneConfig, FinetuneSpec, resolve_config
from electra_tf.finetune.init import (
    _known_run_dir,
    _saved_sections,
    init_kind,
    init_model_config,
    init_vocab,
)
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.task import FinetuneTask

log = logging.getLogger(__name__)

TOKENIZER_FIELDS = ("tokenizer", "vocab_file", "sentencepiece_model", "lower_case",
                    "strip_accents")


def _init_tokenizer_settings(init: str) -> dict:
    """What `init` says about its tokenizer (empty for none)."""
    kind = init_kind(init)
    if kind == "none":
        return {}
    if kind in ("pretraining_run", "finetune_run"):
        saved = _saved_sections(_known_run_dir(init))
        section = saved.get("data" if kind == "pretraining_run" else "task") or {}
        out = {k: section.get(k) for k in TOKENIZER_FIELDS if section.get(k) is not None}
        out["vocab_file"] = init_vocab(init) if out.get("tokenizer", "wordpiece") == \
            "wordpiece" else None
        return out
    out = {"tokenizer": "wordpiece", "vocab_file": init_vocab(init), "lower_case": True}
    for folder in (init, os.path.join(init, "discriminator")):
        path = os.path.join(folder, "tokenizer_config.json")
        if kind == "huggingface" and tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                hf = json.loads(f.read())
            out["lower_case"] = bool(hf.get("do_lower_case", True))
            if hf.get("strip_accents") is not None:
                out["strip_accents"] = bool(hf["strip_accents"])
            break
    return out


def tokenizer_settings(spec: FinetuneSpec) -> dict:
    """The resolved task.tokenizer / vocab_file / sentencepiece_model / lower_case /
    strip_accents: the init's, with the spec's own task fields on top."""
    given = {k: v for k, v in spec.section("task").items() if k in TOKENIZER_FIELDS
             and v is not None}
    settings = {**_init_tokenizer_settings(spec.init), **given}
    settings.setdefault("tokenizer", "wordpiece")
    settings.setdefault("lower_case", True)
    settings.setdefault("strip_accents", settings["lower_case"])
    if settings["tokenizer"] == "wordpiece" and not settings.get("vocab_file"):
        raise ConfigError(
            f"{spec.source}: no WordPiece vocabulary: task.init is {spec.init} and "
            "task.vocab_file is not set; set task.vocab_file to the vocab.txt the encoder was "
            "pretrained with")
    if settings["tokenizer"] == "sentencepiece" and not settings.get("sentencepiece_model"):
        raise ConfigError(f"{spec.source}: task.tokenizer is sentencepiece but "
                          "task.sentencepiece_model is not set")
    return settings


def load_task_tokenizer(settings: dict):
    from electra_tf.data import load_tokenizer

    data = DataConfig(tokenizer=settings["tokenizer"], vocab_file=settings.get("vocab_file"),
                      sentencepiece_model=settings.get("sentencepiece_model"),
                      lower_case=settings["lower_case"],
                      strip_accents=settings["strip_accents"])
    return load_tokenizer(data)


def count_examples(examples: tf.data.Dataset) -> int:
    known = int(examples.cardinality())
    if known >= 0:
        return known
    return int(examples.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def has_split(config: FinetuneConfig, split: str) -> bool:
    """Whether `split` is configured: file sources need its path; the others always have it."""
    from electra_tf.finetune.data_config import FILE_SOURCES

    if config.data.source in FILE_SOURCES:
        return bool(getattr(config.data, f"{split}_path"))
    return True


def prepare_task(spec: FinetuneSpec) -> FinetuneTask:
    """Resolves the spec into a validated config (see the module doc) and builds the task.

    The label set is saved in the run directory; one saved there already (a resumed run) must
    be the same set.
    """
    from electra_tf.finetune.sources import read_examples

    draft = spec.draft()
    settings = tokenizer_settings(spec)
    tokenizer = load_task_tokenizer(settings)
    spec = FinetuneSpec(merge(spec.data, {"task": settings}), spec.source)
    model = None
    if spec.init != "none":
        model = init_model_config(spec.init, draft.model)
    elif tokenizer.vocab_size != draft.model.vocab_size:
        log.info("model.vocab_size: %d, the size of the vocabulary", tokenizer.vocab_size)
        spec = FinetuneSpec(merge(spec.data, {"model": {"vocab_size": tokenizer.vocab_size}}),
                            spec.source)
    kind = draft.task.kind
    train_examples = read_examples(draft.data, "train", kind)
    labels = LabelSet.for_task(draft.data, kind, train_examples)
    config = resolve_config(spec, model=model, num_train_examples=count_examples(train_examples),
                            num_labels=len(labels) if labels is not None else None)
    if config.model.vocab_size != tokenizer.vocab_size:
        raise ConfigError(f"{spec.source}: the encoder has a {config.model.vocab_size}-token "
                          f"vocabulary but the tokenizer ({tokenizer.vocab_path}) has "
                          f"{tokenizer.vocab_size}; set task.vocab_file to the encoder's vocab")
    log.info("fine-tuning %s: %d labels, %d steps (%.3g epochs of batch %d), learning rate %.3g, "
             "layer-wise decay %.3g", kind, config.task.num_labels, config.train.steps,
             config.task.epochs, config.train.batch_size, config.train.learning_rate,
             config.task.layerwise_lr_decay)
    return FinetuneTask(config, tokenizer, labels,
                        has_validation=has_split(config, "validation"))
