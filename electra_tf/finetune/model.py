"""The fine-tuning network: the pretrained encoder with a task head on top.

The encoder is the discriminator's (embeddings, `embeddings_project` when E != H, L transformer
layers), built from the same layers as `electra_tf.models.networks.Discriminator`, so any
pretrained encoder loads into it by name. The heads are HuggingFace's, so HF export and import
are exact:

    sequence  ([CLS] -> dropout -> Dense(H) -> GELU -> dropout -> Dense(N)):
              ElectraForSequenceClassification's `classifier.dense` / `classifier.out_proj`;
              classification (N labels) and regression (N = 1)
    token     (dropout -> Dense(N) at every position): ElectraForTokenClassification's
              `classifier`; tagging

Every head maps the encoder's sequence output [B, L, H] to float32 logits: [B, N] for a
sequence head, [B, L, N] for a token head. An extractive-QA head (start/end logits per token,
HF's `qa_outputs`) is one more `TokenHead` with N = 2: no other change is needed.

Variables have stable TF1-style names (`model_variables`): the encoder's are those of Google's
checkpoints (`electra/...`), the heads' are `classifier/...`; `tf1_to_hf` of models/names.py
turns all of them into HF parameter names.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from electra_tf.config import ModelConfig
from electra_tf.models.layers import Embeddings, Encoder, gelu, truncated_normal
from electra_tf.models.names import embeddings_variables, encoder_variables

SEQUENCE_HEAD = "sequence"
TOKEN_HEAD = "token"
HEAD_OF_KIND = {"classification": SEQUENCE_HEAD, "regression": SEQUENCE_HEAD,
                "tagging": TOKEN_HEAD}
HEAD_SCOPE = "classifier"


def _dense(units: int, name: str, config: ModelConfig, dtype) -> keras.layers.Dense:
    return keras.layers.Dense(units, name=name, dtype=dtype,
                              kernel_initializer=truncated_normal(config.initializer_range))


class SequenceHead(keras.layers.Layer):
    """HF's ElectraClassificationHead: the [CLS] vector through dense -> GELU -> dense."""

    kind = SEQUENCE_HEAD

    def __init__(self, config: ModelConfig, num_outputs: int, dropout: float, **kwargs):
        super().__init__(name=kwargs.pop("name", HEAD_SCOPE), **kwargs)
        self.num_outputs = num_outputs
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        with keras.name_scope(self.name):
            self.dense = _dense(config.hidden_size, "dense", config, self.dtype_policy)
            # The logits in float32 under mixed precision, as the discriminator's.
            self.out_proj = _dense(num_outputs, "out_proj", config, "float32")
            self.dense.build((None, config.hidden_size))
            self.out_proj.build((None, config.hidden_size))
        self.built = True

    def call(self, sequence_output, training=None):
        x = self.dropout(sequence_output[:, 0], training=training)
        x = self.dropout(gelu(self.dense(x)), training=training)
        return ops.cast(self.out_proj(x), "float32")

    def named_variables(self) -> dict:
        return {f"{HEAD_SCOPE}/{part}/{leaf}": getattr(layer, leaf)
                for part, layer in (("dense", self.dense), ("out_proj", self.out_proj))
                for leaf in ("kernel", "bias")}


class TokenHead(keras.layers.Layer):
    """HF's token classifier: dropout, then one Dense(N) applied at every position."""

    kind = TOKEN_HEAD

    def __init__(self, config: ModelConfig, num_outputs: int, dropout: float,
                 scope: str = HEAD_SCOPE, **kwargs):
        super().__init__(name=kwargs.pop("name", scope), **kwargs)
        self.scope = scope
        self.num_outputs = num_outputs
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        with keras.name_scope(self.name):
            self.dense = _dense(num_outputs, "dense", config, "float32")
            self.dense.build((None, None, config.hidden_size))
        self.built = True

    def call(self, sequence_output, training=None):
        x = self.dropout(sequence_output, training=training)
        return ops.cast(self.dense(x), "float32")

    def named_variables(self) -> dict:
        return {f"{self.scope}/kernel": self.dense.kernel, f"{self.scope}/bias": self.dense.bias}


class FinetuneModel(keras.Model):
    """Encoder + one head. `call` returns the head's float32 logits."""

    def __init__(self, config: ModelConfig, kind: str, num_outputs: int,
                 head_dropout: float | None = None, dtype=None, name: str = "finetune"):
        super().__init__(name=name, dtype=dtype)
        if kind not in HEAD_OF_KIND:
            raise ValueError(f"unknown task kind {kind!r}; choose one of {sorted(HEAD_OF_KIND)}")
        config.validate()
        self.config = config
        self.kind = kind
        self.num_outputs = num_outputs
        policy = self.dtype_policy
        head_dropout = config.dropout if head_dropout is None else head_dropout
        self.head_dropout = head_dropout
        with keras.name_scope(name):
            self.embeddings = Embeddings(
                config.vocab_size, config.embedding_size, config.max_position_embeddings,
                config.type_vocab_size, config.dropout, config.initializer_range,
                config.layer_norm_epsilon, dtype=policy)
            self.encoder = Encoder(
                config.embedding_size, config.hidden_size, config.num_layers, config.num_heads,
                config.intermediate_size, config.dropout, config.attention_dropout,
                config.initializer_range, config.layer_norm_epsilon, name="encoder",
                dtype=policy)
            head_class = SequenceHead if HEAD_OF_KIND[kind] == SEQUENCE_HEAD else TokenHead
            self.head = head_class(config, num_outputs, head_dropout, dtype=policy)
        self.built = True

    def encode(self, input_ids, input_mask, segment_ids, training=None):
        """The encoder's sequence output [batch, seq, hidden]."""
        embedded = self.embeddings(input_ids, segment_ids, training=training)
        return self.encoder(embedded, input_mask, training=training)

    def call(self, input_ids, input_mask, segment_ids, training=None):
        return self.head(self.encode(input_ids, input_mask, segment_ids, training=training),
                         training=training)

    # ------------------------------------------------------------------ names

    def encoder_variables(self) -> dict:
        """Embeddings, embeddings_project and transformer layers under their TF1 names."""
        out = embeddings_variables(self.embeddings)
        out.update(encoder_variables("electra", self.encoder))
        return out

    def model_variables(self) -> dict:
        """Every trainable variable once, under its stable name (checkpoints, HF export)."""
        out = self.encoder_variables()
        out.update(self.head.named_variables())
        return out

    def dropout_seed_states(self) -> list:
        """The dropout layers' seed states (checkpointed, so resumed runs draw the same masks)."""
        seen, states = set(), []
        for variable in self.non_trainable_variables:
            if "seed_generator" in variable.path and id(variable) not in seen:
                seen.add(id(variable))
                states.append(variable)
        return states


def build_model(config: ModelConfig, kind: str, num_outputs: int,
                head_dropout: float | None = None, precision: str | None = None
                ) -> FinetuneModel:
    """A FinetuneModel with all variables built (call under `strategy.scope()`)."""
    policy = keras.dtype_policies.get(precision or "float32")
    return FinetuneModel(config, kind, num_outputs, head_dropout, dtype=policy)


def model_checkpoint(model: FinetuneModel) -> tf.train.Checkpoint:
    """The model's variables by stable name, plus the dropout seeds, for run checkpoints."""
    return tf.train.Checkpoint(
        weights=dict(model.model_variables()),
        dropout_seeds={f"seed_{i}": v for i, v in enumerate(model.dropout_seed_states())})
