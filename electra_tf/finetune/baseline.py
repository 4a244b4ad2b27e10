"""Does the pretrained encoder help? The same fine-tuning from a random initialisation.

    electra-tf finetune --config configs/finetune/quickstart.yaml --compare-random

`random_init_spec` turns a prepared fine-tuning task into its control: the same config, recipe
and seed, with `task.init: none`, the pretrained encoder's sizes and tokenizer written out in
full, and its own run directory (`RUN_DIR` + `RANDOM_SUFFIX`). The CLI (`commands.py`) trains
both and prints their best checkpoints' scores side by side.
"""

from __future__ import annotations

import dataclasses

from electra_tf.config.loading import merge
from electra_tf.finetune.config import FinetuneSpec
from electra_tf.finetune.setup import TOKENIZER_FIELDS
from electra_tf.finetune.task import FinetuneTask

__all__ = ["RANDOM_SUFFIX", "random_init_spec"]

RANDOM_SUFFIX = "_random_init"


def random_init_spec(spec: FinetuneSpec, task: FinetuneTask) -> FinetuneSpec:
    """The random-init control of `task` (prepared from `spec`); see the module doc."""
    config = task.config
    if config.task.init == "none":
        raise ValueError("the task is already initialised at random")
    tokenizer = {k: getattr(config.task, k) for k in TOKENIZER_FIELDS}
    # word_norm rescales loaded rows: a random-init run has none, so the control drops it.
    changes = {"task": {**tokenizer, "init": "none", "word_norm": None},
               "model": dataclasses.asdict(config.model),
               "train": {"run_dir": config.train.run_dir.rstrip("/") + RANDOM_SUFFIX}}
    return FinetuneSpec(merge(spec.data, changes), f"{spec.source} (random init)")

