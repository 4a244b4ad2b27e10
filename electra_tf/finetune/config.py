"""The fine-tuning run config: sections `model`, `task`, `data`, `train`, from YAML.

    model:  ModelConfig. Normally read from `task.init` (the pretrained checkpoint's sizes);
            fields given here override it (dropout, say). With `task.init: none`, the sizes
            come from here (`model.preset` selects reference sizes, as for pretraining).
    task:   what is trained on top of the encoder (`TaskConfig`)
    data:   where the examples come from (`FinetuneDataConfig`)
    train:  the pretraining `TrainConfig`, with the ELECTRA fine-tuning defaults below

Fine-tuning recipe (reference `configure_finetuning.py`): AdamW with epsilon 1e-6 and weight
decay 0.01, clip 1.0, batch 32, linear warmup over the first 10% of the steps then linear decay,
peak learning rate by size (3e-4 small, 1e-4 base, 5e-5 large), layer-wise learning-rate decay
(0.8 small/base, 0.9 large), 3 epochs, or 10 epochs for a small data set: fewer than
`SMALL_DATASET` (3,000) training examples, which matches the authors' choice for RTE (2.5k);
STS-B (5.7k), which they also train for 10, sets `task.epochs: 10` in its shipped config.

Derived fields are computed once the facts are known (`resolve_config`): the encoder's sizes
(from the checkpoint), the number of labels (from the training split) and the number of
training examples. `train.steps` = ceil(examples * epochs / batch), `train.warmup_steps` =
10% of it, `train.eval_every` and `train.checkpoint_every` = one epoch, unless set. The result is
a new, validated, fully explicit config (saved as RUN_DIR/config.yaml; reading it back derives
nothing).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from electra_tf.config import MODEL_PRESETS, ConfigError, ModelConfig, TrainConfig, loading
from electra_tf.config.loading import build_section, coerce, merge
from electra_tf.finetune.data_config import FinetuneDataConfig

KINDS = ("classification", "regression", "tagging")
SMALL_DATASET = 3000
DEFAULT_EPOCHS, SMALL_DATASET_EPOCHS = 3.0, 10.0
WARMUP_FRACTION = 0.1
# Peak learning rate and layer-wise decay per size class (see `size_class`).
LEARNING_RATES = {"small": 3e-4, "base": 1e-4, "large": 5e-5}
LAYERWISE_DECAY = {"small": 0.8, "base": 0.8, "large": 0.9}
# The main metric per kind (task.main_metric overrides, e.g. mcc for CoLA, f1 for MRPC).
MAIN_METRICS = {"classification": "accuracy", "regression": "spearman", "tagging": "f1"}
# The fine-tuning defaults of the train section (the rest are TrainConfig's own defaults).
TRAIN_DEFAULTS: dict[str, Any] = dict(run_dir="runs/finetune", batch_size=32, weight_decay=0.01,
                      adam_epsilon=1e-6, clip_norm=1.0, keep_checkpoints=2, eval_steps=1_000_000,
                      text_summary_every=0)
_DERIVED_TRAIN = ("steps", "learning_rate", "warmup_steps", "eval_every", "checkpoint_every",
                  "log_every")


def size_class(model: ModelConfig) -> str:
    """"small" (hidden < 768, tiny included), "base" (< 1024) or "large"."""
    if model.hidden_size >= 1024:
        return "large"
    return "base" if model.hidden_size >= 768 else "small"


@dataclass
class TaskConfig:
    """What is trained on the encoder. None fields are derived (see the module docstring)."""

    kind: str = "classification"       # classification | regression | tagging
    num_labels: int | None = None      # from the training split's label set (1 for regression)
    init: str = "none"                 # pretraining run dir, HF dir, TF1 checkpoint, or none
    epochs: float | None = None        # 3, or 10 below SMALL_DATASET training examples
    layerwise_lr_decay: float | None = None  # 0.8 small/base, 0.9 large; 1.0 turns it off
    # The authors' code gives the top encoder layer decay^2 (no layer has depth L+1): true
    # reproduces that; false (default) gives the top layer decay^1 as the formula says.
    lr_decay_top_off_by_one: bool = False
    dropout: float | None = None       # the head's dropout; None: model.dropout
    main_metric: str | None = None     # picks the best checkpoint; by kind when unset
    # Not in the reference recipe: rescale each warm-started word-embedding row to this L2
    # norm, directions kept (docs/finetuning.md). None (default) loads the rows as they are.
    word_norm: float | None = None
    # The tokenizer: None fields come from task.init (its run config, its vocab.txt, an HF
    # tokenizer_config.json); with init none a vocab_file (or sentencepiece_model) is required.
    tokenizer: str | None = None       # wordpiece | sentencepiece
    vocab_file: str | None = None
    sentencepiece_model: str | None = None
    lower_case: bool | None = None
    strip_accents: bool | None = None

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"task.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.num_labels is not None and self.num_labels < 1:
            raise ConfigError(f"task.num_labels must be >= 1, got {self.num_labels}")
        if self.kind == "regression" and self.num_labels not in (None, 1):
            raise ConfigError(f"task.kind regression has one output; task.num_labels is "
                              f"{self.num_labels}: remove it")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"task.epochs must be > 0, got {self.epochs}")
        if self.layerwise_lr_decay is not None and not 0.0 < self.layerwise_lr_decay <= 1.0:
            raise ConfigError(f"task.layerwise_lr_decay must be in (0, 1] (1 turns it off), "
                              f"got {self.layerwise_lr_decay}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"task.dropout must be in [0, 1), got {self.dropout}")
        if not self.init:
            raise ConfigError("task.init is empty: give a checkpoint path or `none`")
        if self.word_norm is not None and not self.word_norm > 0:
            raise ConfigError(f"task.word_norm must be > 0 (or unset), got {self.word_norm}")
        if self.word_norm is not None and self.init == "none":
            raise ConfigError("task.word_norm rescales pretrained word embeddings, and "
                              "task.init is none: set task.init or remove task.word_norm")
        if self.tokenizer not in (None, "wordpiece", "sentencepiece"):
            raise ConfigError(f"task.tokenizer must be wordpiece or sentencepiece, got "
                              f"{self.tokenizer!r}")


@dataclass
class FinetuneConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**TRAIN_DEFAULTS))

    @property
    def head_dropout(self) -> float:
        return self.model.dropout if self.task.dropout is None else self.task.dropout

    def validate(self) -> FinetuneConfig:
        self.model.validate()
        self.task.validate()
        self.data.validate(self.task.kind)
        self.train.validate()
        seq_length = getattr(self.data, "seq_length", None)
        if seq_length is not None and seq_length > self.model.max_position_embeddings:
            raise ConfigError(f"data.seq_length ({seq_length}) is above the encoder's "
                              f"max_position_embeddings ({self.model.max_position_embeddings})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------

_SECTIONS = {"model": ModelConfig, "task": TaskConfig, "data": FinetuneDataConfig,
             "train": TrainConfig}


def parse_override(text: str) -> dict[str, Any]:
    """`task.epochs=5` -> {"task": {"epochs": 5}}; the value is parsed as YAML."""
    return loading.parse_override(text, _SECTIONS, example="task.epochs=5")


def read_yaml(path: str) -> dict[str, Any]:
    """The mapping in a YAML config file (local or gs://)."""
    return loading.read_config_file(path, sections="model, task, data, train",
                                    example="configs/finetune/sst2.yaml")


@dataclass(frozen=True)
class FinetuneSpec:
    """What the YAML file and the --set overrides say, before the facts are known."""

    data: dict[str, Any]
    source: str

    @property
    def init(self) -> str:
        return (self.data.get("task") or {}).get("init") or "none"

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.data.get(name) or {})

    def draft(self) -> FinetuneConfig:
        """The config with placeholder facts: checks names, types and values up front."""
        return resolve_config(self, model=None, num_train_examples=1, num_labels=None)


def load_spec(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> FinetuneSpec:
    data = read_yaml(path) if path is not None else {}
    for text in overrides:
        data = merge(data, parse_override(text))
    for section, value in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{path}: unknown section {section!r}; the sections are "
                              f"{sorted(_SECTIONS)}")
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping of fields, got "
                              f"{value!r}")
    spec = FinetuneSpec(data, str(path) if path else "defaults")
    spec.draft()
    return spec


def _model_section(spec: FinetuneSpec, model: ModelConfig | None) -> dict[str, Any]:
    raw = spec.section("model")
    preset = raw.pop("preset", None)
    if model is not None:  # the checkpoint's sizes, then the config's fields on top
        return {**dataclasses.asdict(model), **raw}
    if preset is not None:
        if preset not in MODEL_PRESETS:
            raise ConfigError(f"model.preset {preset!r} is unknown; choose one of "
                              f"{sorted(MODEL_PRESETS)}")
        raw = {**MODEL_PRESETS[preset], **raw}
    return raw


def _derive_train(train: dict[str, Any], model: ModelConfig, epochs: float,
                  num_train_examples: int | None, source: str) -> dict[str, Any]:
    out = {**TRAIN_DEFAULTS, **train}
    out.setdefault("learning_rate", LEARNING_RATES[size_class(model)])
    batch = coerce(out["batch_size"], int, "train.batch_size")
    if "steps" not in out:
        if num_train_examples is None:
            raise ConfigError(f"{source}: train.steps is not set and the number of training "
                              "examples is unknown")
        out["steps"] = max(1, math.ceil(num_train_examples * epochs / max(batch, 1)))
    steps = coerce(out["steps"], int, "train.steps")
    if num_train_examples is not None:
        per_epoch = max(1, math.ceil(num_train_examples / max(batch, 1)))
    else:
        per_epoch = max(1, math.ceil(steps / epochs))
    out.setdefault("warmup_steps", int(round(WARMUP_FRACTION * steps)))
    out.setdefault("eval_every", per_epoch if per_epoch < steps else 0)
    out.setdefault("checkpoint_every", min(per_epoch, steps))
    out.setdefault("log_every", max(1, min(100, per_epoch)))
    return out


def _sync_init(task: TaskConfig, train: dict[str, Any]) -> tuple[TaskConfig, dict[str, Any]]:
    """task.init is the loop's train.init_checkpoint (loaded only when the run does not resume);
    either may be given."""
    given = train.get("init_checkpoint")
    if task.init != "none" and given not in (None, task.init):
        raise ConfigError(f"task.init ({task.init}) and train.init_checkpoint ({given}) "
                          "differ; set only task.init")
    if task.init == "none" and given:
        return dataclasses.replace(task, init=given), train
    return task, {**train, "init_checkpoint": None if task.init == "none" else task.init}


def resolve_config(spec: FinetuneSpec, *, model: ModelConfig | None,
                   num_train_examples: int | None, num_labels: int | None) -> FinetuneConfig:
    """The validated, fully explicit config: `spec` with the facts filled in.

    `model` is the init checkpoint's ModelConfig (None: the model section alone), `num_labels`
    the size of the training split's label set (None: task.num_labels or a placeholder for a
    draft), `num_train_examples` the training split's size (used when train.steps is unset).
    """
    try:
        model_config = build_section(ModelConfig, _model_section(spec, model), "model")
        task = build_section(TaskConfig, spec.section("task"), "task")
        task.validate()
        model_config.validate()
        epochs = task.epochs
        if epochs is None:
            small = num_train_examples is not None and num_train_examples < SMALL_DATASET
            epochs = SMALL_DATASET_EPOCHS if small else DEFAULT_EPOCHS
        labels = 1 if task.kind == "regression" else (task.num_labels or num_labels or 2)
        if num_labels is not None and task.num_labels not in (None, num_labels) and \
                task.kind != "regression":
            raise ConfigError(f"task.num_labels is {task.num_labels} but the training split "
                              f"has {num_labels} labels: remove task.num_labels")
        size = size_class(model_config)
        task = dataclasses.replace(
            task, num_labels=labels, epochs=float(epochs),
            layerwise_lr_decay=task.layerwise_lr_decay or LAYERWISE_DECAY[size],
            dropout=model_config.dropout if task.dropout is None else task.dropout,
            main_metric=task.main_metric or MAIN_METRICS[task.kind])
        train = _derive_train(spec.section("train"), model_config, float(epochs),
                              num_train_examples, spec.source)
        task, train = _sync_init(task, train)
        config = FinetuneConfig(
            model=model_config, task=task,
            data=build_section(FinetuneDataConfig, spec.section("data"), "data").resolve(task.kind),
            train=build_section(TrainConfig, train, "train"))
        return config.validate()
    except ConfigError as e:
        raise ConfigError(f"{spec.source}: {e}") from None


def read_finetune_config(path: str) -> FinetuneConfig:
    """Reads a config a fine-tuning run saved (fully explicit: nothing is derived)."""
    spec = FinetuneSpec(read_yaml(path), path)
    return resolve_config(spec, model=None, num_train_examples=None, num_labels=None)


def save_finetune_config(config: FinetuneConfig, path: str) -> None:
    """Writes the resolved config as YAML, atomically (tf.io.gfile)."""
    import tensorflow as tf

    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(config.to_yaml())
    tf.io.gfile.rename(tmp, path, overwrite=True)
