"""The run configuration's typed sections, their presets and their validation.

A run is described by one `RunConfig` with four sections:

    model:      network sizes (presets `tiny`, `small`, `base`, `large`)
    objective:  what is trained (ELECTRA replaced-token detection, or a plain BERT-style MLM)
    data:       where text comes from and how it becomes examples
    train:      strategy, precision, optimizer, schedule, checkpoints and summaries

Every field has a default, so a YAML file only lists what differs (`loading.py`).
"""


from __future__ import annotations

import codecs
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from electra_tf.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value is missing, unknown or invalid. The message says which and why."""


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """Sizes of the discriminator; the generator is derived from them (docs/algorithm.md,
    "Sizes")."""

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 12
    num_heads: int = 4
    intermediate_size: int = 1024
    generator_fraction: float = 0.25
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02
    layer_norm_epsilon: float = 1e-12

    # Derived generator sizes (docs/algorithm.md: hidden = round(H * fraction), layers = L,
    # FFN = 4 * hidden, heads = max(1, hidden // 64)).
    @property
    def generator_hidden_size(self) -> int:
        return max(1, int(round(self.hidden_size * self.generator_fraction)))

    @property
    def generator_num_heads(self) -> int:
        return max(1, self.generator_hidden_size // 64)

    @property
    def generator_intermediate_size(self) -> int:
        return 4 * self.generator_hidden_size

    def validate(self) -> None:
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, "
                                  f"got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.hidden_size ({self.hidden_size}) is not divisible by model.num_heads "
                f"({self.num_heads}); pick a head count that divides the hidden size")
        if not 0.0 < self.generator_fraction <= 1.0:
            raise ConfigError(
                f"model.generator_fraction must be in (0, 1], got {self.generator_fraction} "
                "(the paper uses 1/4 for small and large, 1/3 for base)")
        if self.generator_hidden_size % self.generator_num_heads:
            raise ConfigError(
                f"generator hidden size {self.generator_hidden_size} (hidden_size * "
                f"generator_fraction) is not divisible by its {self.generator_num_heads} heads; "
                "adjust model.generator_fraction")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.type_vocab_size < 2:
            raise ConfigError(f"model.type_vocab_size must be at least 2 (examples are sentence "
                              f"pairs with segment ids 0 and 1), got {self.type_vocab_size}")
        for name in ("initializer_range", "layer_norm_epsilon"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be > 0, got {getattr(self, name)}")


MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # For tests and the quickstart: seconds per hundred steps on a laptop CPU.
    "tiny": dict(embedding_size=64, hidden_size=128, num_layers=2, num_heads=2,
                 intermediate_size=512, generator_fraction=0.5, max_position_embeddings=512),
    "small": dict(embedding_size=128, hidden_size=256, num_layers=12, num_heads=4,
                  intermediate_size=1024, generator_fraction=0.25),
    "base": dict(embedding_size=768, hidden_size=768, num_layers=12, num_heads=12,
                 intermediate_size=3072, generator_fraction=1.0 / 3.0),
    "large": dict(embedding_size=1024, hidden_size=1024, num_layers=24, num_heads=16,
                  intermediate_size=4096, generator_fraction=0.25),
}


def model_preset(name: str, **overrides: Any) -> ModelConfig:
    """Returns the reference sizes for `name` (tiny, small, base, large), with overrides."""
    if name not in MODEL_PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
    config = ModelConfig(**{**MODEL_PRESETS[name], **overrides})
    config.validate()
    return config


@dataclass
class ObjectiveConfig:
    """The pretraining objective (docs/algorithm.md, objective steps 1-10)."""

    kind: str = "electra"            # "electra" (replaced token detection) or "mlm" (BERT baseline)
    mask_prob: float = 0.15
    mask_token_fraction: float = 0.85  # of the chosen positions, this share becomes [MASK]
    max_predictions: int | None = None  # default: int((mask_prob + 0.005) * seq_length)
    temperature: float = 1.0
    mlm_weight: float = 1.0
    disc_weight: float = 50.0
    # The discriminator's output bias at initialisation. "zero" is the reference (P = 0.5 for
    # every token); "prior" starts it at logit(mask_prob), the share of replaced tokens, so the
    # network need not learn the base rate through its weights (a departure, measured in
    # docs/plateau.md: it keeps the tiny discriminator's token vectors from collapsing).
    # Without a discriminator (kind mlm) it does nothing.
    disc_bias_init: str = "zero"

    def disc_initial_bias(self) -> float:
        """The discriminator's output bias at initialisation (see disc_bias_init)."""
        if self.disc_bias_init == "zero":
            return 0.0
        return math.log(self.mask_prob / (1.0 - self.mask_prob))

    def max_predictions_for(self, seq_length: int) -> int:
        """N, the masked positions per sequence: objective.max_predictions when set, else the
        reference's int((mask_prob + 0.005) * seq_length) (19 at 128 / 0.15, 79 at 512)."""
        if self.max_predictions is not None:
            return self.max_predictions
        return max(1, int((self.mask_prob + 0.005) * seq_length))

    def validate(self) -> None:
        if self.kind not in ("electra", "mlm"):
            raise ConfigError(f"objective.kind must be 'electra' or 'mlm', got {self.kind!r}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ConfigError(f"objective.mask_prob must be in (0, 1), got {self.mask_prob}")
        if not 0.0 <= self.mask_token_fraction <= 1.0:
            raise ConfigError("objective.mask_token_fraction must be in [0, 1], "
                              f"got {self.mask_token_fraction}")
        if self.max_predictions is not None and self.max_predictions < 1:
            raise ConfigError(f"objective.max_predictions must be >= 1, got {self.max_predictions}")
        if self.temperature <= 0:
            raise ConfigError(f"objective.temperature must be > 0, got {self.temperature}")
        if self.mlm_weight < 0 or self.disc_weight < 0:
            raise ConfigError("objective.mlm_weight and objective.disc_weight must be >= 0")
        if self.disc_bias_init not in ("zero", "prior"):
            raise ConfigError(f"objective.disc_bias_init must be 'zero' (the reference) or "
                              f"'prior', got {self.disc_bias_init!r}")


@dataclass
class DataConfig:
    """Where text comes from and how it becomes fixed-length examples."""

    source: str = "default"          # "default" (WordNet glosses), "text", "tfds" or "tfrecord"
    # "text": files or globs (local or gs://); "tfrecord": directories of prepared shards
    paths: list[str] = field(default_factory=list)
    layout: str = "sentence_per_line"  # or "document_per_line"
    tfds_name: str | None = None     # e.g. "wikipedia/20230601.en"
    tfds_split: str = "train"
    tfds_feature: str = "text"
    tfds_data_dir: str | None = None
    tokenizer: str = "wordpiece"     # or "sentencepiece"
    vocab_file: str | None = None    # WordPiece vocab.txt; built into the run dir when missing
    vocab_size: int = 30522          # size for an automatically built vocab
    sentencepiece_model: str | None = None
    lower_case: bool = True
    strip_accents: bool = True
    seq_length: int = 128
    short_seq_prob: float = 0.05
    single_segment_prob: float = 0.10
    eval_documents: int = 200        # documents held out for evaluation
    eval_paths: list[str] = field(default_factory=list)  # explicit eval files ("text"); no holdout
    # Keep tokenized documents in RAM (None: only for the default corpus).
    cache_tokenized: bool | None = None
    shuffle_buffer: int = 10000
    # Same config, same seed, same batches (and weights); costs ~3% of the pipeline (see
    # docs/reliability.md). false lets tf.data hand out whichever element is ready first.
    deterministic: bool = True
    seed: int = 0
    # Text files: their encoding (any Python codec name except UTF-16/32, e.g. latin-1, cp1252),
    # and the share of undecodable characters above which reading stops with an error.
    encoding: str = "utf-8"
    max_decode_error_fraction: float = 0.001

    @property
    def max_piece_chars(self) -> int:
        """The longest line (sentence_per_line) or document (document_per_line, tfds), in
        characters, that reaches the tokenizer whole (about 16 sequences at 4 characters a
        token). Longer ones are cut into pieces before tokenization, which bounds the input
        pipeline's memory by the configuration whatever the corpus holds."""
        return 64 * self.seq_length

    @property
    def max_document_bytes(self) -> int:
        """A sentence_per_line document longer than this (about 64 sequences, where packing cuts
        documents anyway) is read in parts cut between its lines."""
        return 256 * self.seq_length

    def validate(self) -> None:
        if self.source not in ("default", "text", "tfds", "tfrecord"):
            raise ConfigError("data.source must be 'default', 'text', 'tfds' or 'tfrecord', "
                              f"got {self.source!r}")
        if self.source == "tfrecord" and not self.paths:
            raise ConfigError("data.source is 'tfrecord' but data.paths is empty: list the "
                              "directories written by pipelines.prepare_pretraining_data")
        if self.source == "tfrecord" and not (self.vocab_file or self.sentencepiece_model):
            raise ConfigError("data.source is 'tfrecord' but data.vocab_file is not set: give the "
                              "vocabulary the shards were made with (see their metadata.json)")
        if self.source == "text" and not self.paths:
            raise ConfigError("data.source is 'text' but data.paths is empty: list the text files "
                              "or globs to read (e.g. --set data.paths=[corpus/*.txt])")
        if self.source == "tfds" and not self.tfds_name:
            raise ConfigError("data.source is 'tfds' but data.tfds_name is not set "
                              "(e.g. wikipedia/20230601.en)")
        if self.layout not in ("sentence_per_line", "document_per_line"):
            raise ConfigError("data.layout must be 'sentence_per_line' or 'document_per_line', "
                              f"got {self.layout!r}")
        if self.tokenizer not in ("wordpiece", "sentencepiece"):
            raise ConfigError(f"data.tokenizer must be 'wordpiece' or 'sentencepiece', "
                              f"got {self.tokenizer!r}")
        if self.tokenizer == "sentencepiece" and not self.sentencepiece_model:
            raise ConfigError("data.tokenizer is 'sentencepiece' but data.sentencepiece_model "
                              "is not set: give the path of a trained .model file")
        if self.seq_length < 8:
            raise ConfigError(f"data.seq_length must be at least 8, got {self.seq_length}")
        for name in ("short_seq_prob", "single_segment_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.eval_documents < 0:
            raise ConfigError(f"data.eval_documents must be >= 0, got {self.eval_documents}")
        if self.eval_paths and self.source not in ("text", "tfrecord"):
            raise ConfigError(f"data.eval_paths is only read by data.source=text, not "
                              f"{self.source!r}: remove it (data.eval_documents sets how many "
                              "documents are held out for evaluation)")
        if self.shuffle_buffer < 1:
            raise ConfigError(f"data.shuffle_buffer must be >= 1, got {self.shuffle_buffer}")
        if self.vocab_size < 6:
            raise ConfigError(f"data.vocab_size must be at least 6 (five special tokens and one "
                              f"more), got {self.vocab_size}")
        try:
            codec = codecs.lookup(self.encoding).name
        except (LookupError, TypeError):
            raise ConfigError(f"data.encoding {self.encoding!r} is not a known text encoding; "
                              "use e.g. utf-8, latin-1 or cp1252") from None
        if codec.startswith(("utf-16", "utf-32")):
            raise ConfigError(f"data.encoding {self.encoding!r} is not supported (lines are split "
                              "at newline bytes): convert the files to UTF-8, e.g. "
                              f"iconv -f {self.encoding} -t utf-8")
        if not 0.0 <= self.max_decode_error_fraction < 1.0:
            raise ConfigError("data.max_decode_error_fraction must be in [0, 1), "
                              f"got {self.max_decode_error_fraction}")


@dataclass
class TrainConfig:
    """Distribution, precision, optimizer, schedule, checkpoints and summaries."""

    run_dir: str = "runs/electra"
    strategy: str = "auto"           # auto, default, mirrored, multi_worker, tpu
    tpu: str | None = None           # TPU name or address; "local" on a TPU VM
    precision: str = "float32"       # float32, mixed_bfloat16, mixed_float16
    batch_size: int = 128            # global batch size (all replicas)
    steps: int = 1_000_000
    learning_rate: float = 5e-4
    warmup_steps: int = 10_000
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    bias_correction: bool = False    # the reference AdamW has none
    clip_norm: float = 1.0
    steps_per_execution: int = 1
    jit_compile: bool = False
    # tf.data's autotuning thread for the input pipelines; off, because dropping an iterator
    # then waits up to a minute for it (docs/performance.md, "Input autotuning")
    input_autotune: bool = False
    grad_accum_steps: int = 1
    checkpoint_every: int = 1000
    keep_checkpoints: int = 5
    log_every: int = 100
    eval_every: int = 0              # 0: evaluate only at the end
    eval_steps: int = 20
    text_summary_every: int = 1000
    profile_steps: list[int] = field(default_factory=list)  # [first, last] to trace
    init_checkpoint: str | None = None
    allow_partial_init: bool = False
    seed: int = 0

    def validate(self) -> None:
        if self.strategy not in ("auto", "default", "mirrored", "multi_worker", "tpu"):
            raise ConfigError("train.strategy must be auto, default, mirrored, multi_worker or "
                              f"tpu, got {self.strategy!r}")
        if self.precision not in ("float32", "mixed_bfloat16", "mixed_float16"):
            raise ConfigError("train.precision must be float32, mixed_bfloat16 or mixed_float16, "
                              f"got {self.precision!r}")
        for name in ("batch_size", "steps", "steps_per_execution", "grad_accum_steps",
                     "checkpoint_every", "keep_checkpoints", "log_every", "eval_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.grad_accum_steps:
            raise ConfigError(f"train.batch_size ({self.batch_size}) must be divisible by "
                              f"train.grad_accum_steps ({self.grad_accum_steps})")
        for name in ("learning_rate", "adam_epsilon", "clip_norm"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"train.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0 or self.eval_every < 0 or self.text_summary_every < 0:
            raise ConfigError("train.warmup_steps, eval_every and text_summary_every must be >= 0")
        if self.profile_steps and (len(self.profile_steps) != 2
                                   or self.profile_steps[0] > self.profile_steps[1]):
            raise ConfigError("train.profile_steps must be [first_step, last_step], "
                              f"got {self.profile_steps}")


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def max_predictions(self) -> int:
        return self.objective.max_predictions_for(self.data.seq_length)

    def validate(self) -> RunConfig:
        self.model.validate()
        self.objective.validate()
        self.data.validate()
        self.train.validate()
        if self.data.seq_length > self.model.max_position_embeddings:
            raise ConfigError(
                f"data.seq_length ({self.data.seq_length}) is above "
                f"model.max_position_embeddings ({self.model.max_position_embeddings})")
        if self.max_predictions > self.data.seq_length - 2:
            raise ConfigError(f"objective.max_predictions ({self.max_predictions}) must leave room "
                              f"for [CLS] and [SEP] in data.seq_length ({self.data.seq_length})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
