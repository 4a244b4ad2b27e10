"""The two ELECTRA networks: a small MLM generator and the replaced-token discriminator.

Both read the same `Embeddings` object (word, position, token type, LayerNorm); each has its own
`embeddings_project` and encoder. The generator's output layer is tied to the word embeddings
and is evaluated only at the masked positions. Each network creates its layers under its own
name, so Keras variable paths are unique (`generator/layer_0/query/kernel`,
`discriminator/layer_0/query/kernel`); checkpoints use the TF1 names in `names.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import ops

from electra_tf.config import ModelConfig
from electra_tf.models.layers import Embeddings, Encoder, gelu, layer_norm, truncated_normal


def _encoder(config: ModelConfig, hidden: int, layers: int, heads: int, intermediate: int,
             dtype) -> Encoder:
    return Encoder(config.embedding_size, hidden, layers, heads, intermediate, config.dropout,
                   config.attention_dropout, config.initializer_range,
                   config.layer_norm_epsilon, name="encoder", dtype=dtype)


class Generator(keras.Model):
    """Masked language model: encoder, then Dense(E, gelu) -> LayerNorm -> tied softmax layer."""

    def __init__(self, config: ModelConfig, embeddings: Embeddings, hidden_size: int,
                 num_heads: int, intermediate_size: int, name: str = "generator", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.config = config
        self.embeddings = embeddings
        with keras.name_scope(name):
            self.encoder = _encoder(config, hidden_size, config.num_layers, num_heads,
                                    intermediate_size, self.dtype_policy)
            self.head_dense = keras.layers.Dense(
                config.embedding_size, activation=gelu, name="dense", dtype=self.dtype_policy,
                kernel_initializer=truncated_normal(config.initializer_range))
            # The output layer over the vocabulary runs in float32 under mixed precision (as do
            # the losses and the Gumbel sampling that read its logits): its LayerNorm returns
            # float32, so the tied matmul and the bias are float32 too. Variables are unchanged.
            self.head_layer_norm = layer_norm(config.layer_norm_epsilon, "LayerNorm", "float32")
            self.head_dense.build((None, None, hidden_size))
            self.head_layer_norm.build((None, None, config.embedding_size))
        self.output_bias = self.add_weight(name="output_bias", shape=(config.vocab_size,),
                                           initializer="zeros")
        self.built = True

    def encode(self, input_ids, input_mask, segment_ids, training=None):
        """Returns the generator's sequence output [batch, seq, hidden]."""
        embedded = self.embeddings(input_ids, segment_ids, training=training)
        return self.encoder(embedded, input_mask, training=training)

    def mlm_logits(self, sequence_output, positions):
        """Logits [batch, num_positions, vocab] in float32, computed only at `positions`."""
        gathered = ops.take_along_axis(sequence_output, positions[:, :, None], axis=1)
        h = self.head_layer_norm(self.head_dense(gathered))                    # [B, N, E]
        table = ops.cast(self.embeddings.word_embeddings, h.dtype)             # [V, E]
        # One 2-D matmul against the transposed table. (An einsum "bne,ve->bnv" becomes a
        # batched matmul whose table gradient is formed per example, [B, E, V], then summed.)
        flat = tf.reshape(h, [-1, table.shape[1]])
        logits = tf.matmul(flat, table, transpose_b=True) + ops.cast(self.output_bias, h.dtype)
        logits = tf.reshape(logits, tf.concat([tf.shape(h)[:2], [table.shape[0]]], axis=0))
        return ops.cast(logits, "float32")

    def call(self, input_ids, input_mask, segment_ids, masked_positions, training=None):
        sequence_output = self.encode(input_ids, input_mask, segment_ids, training=training)
        return self.mlm_logits(sequence_output, masked_positions)


class Discriminator(keras.Model):
    """Replaced-token detector: encoder, then Dense(H, gelu) -> Dense(1): one logit per token."""

    def __init__(self, config: ModelConfig, embeddings: Embeddings,
                 name: str = "discriminator", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.config = config
        self.embeddings = embeddings
        with keras.name_scope(name):
            self.encoder = _encoder(config, config.hidden_size, config.num_layers, config.num_heads,
                                    config.intermediate_size, self.dtype_policy)
            self.head_dense = keras.layers.Dense(
                config.hidden_size, activation=gelu, name="dense", dtype=self.dtype_policy,
                kernel_initializer=truncated_normal(config.initializer_range))
            # The TF1 reference leaves the final projection at Glorot-uniform init. It computes
            # the logits in float32 under mixed precision.
            self.head_output = keras.layers.Dense(1, name="dense_1", dtype="float32")
            self.head_dense.build((None, None, config.hidden_size))
            self.head_output.build((None, None, config.hidden_size))
        self.built = True

    def encode(self, input_ids, input_mask, segment_ids, training=None):
        """Returns the discriminator's sequence output [batch, seq, hidden]: the encoder."""
        embedded = self.embeddings(input_ids, segment_ids, training=training)
        return self.encoder(embedded, input_mask, training=training)

    def rtd_logits(self, sequence_output):
        """Per-token logits [batch, seq] in float32 that the token was replaced."""
        return ops.cast(ops.squeeze(self.head_output(self.head_dense(sequence_output)), -1),
                        "float32")

    def call(self, input_ids, input_mask, segment_ids, training=None):
        return self.rtd_logits(self.encode(input_ids, input_mask, segment_ids, training=training))


@dataclass
class ElectraNetworks:
    """The networks of one run. For `objective.kind: mlm` there is no discriminator and the
    generator has the discriminator's full size (the paper's BERT baseline)."""

    embeddings: Embeddings
    generator: Generator
    discriminator: Discriminator | None

    @property
    def encoder_network(self) -> keras.Model:
        """The network users fine-tune: the discriminator (or the MLM model for `mlm`)."""
        return self.discriminator if self.discriminator is not None else self.generator

    @property
    def trainable_variables(self) -> list:
        return unique_variables([v for net in (self.generator, self.discriminator)
                                 if net is not None for v in net.trainable_variables])


def unique_variables(variables) -> list:
    """`variables` in order, each once (the two networks share the embedding variables;
    variables do not hash by identity, so this compares ids)."""
    seen: set[int] = set()
    unique = []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            unique.append(variable)
    return unique


def build_networks(config: ModelConfig, objective: str = "electra",
                   dtype: str | None = None) -> ElectraNetworks:
    """Creates the shared embeddings and both networks, with all variables built.

    `dtype` is a Keras dtype policy name: None/"float32", "mixed_bfloat16" or "mixed_float16".
    Call under `strategy.scope()` to create distributed variables.
    """
    config.validate()
    policy = keras.dtype_policies.get(dtype or "float32")
    embeddings = Embeddings(config.vocab_size, config.embedding_size,
                            config.max_position_embeddings, config.type_vocab_size,
                            config.dropout, config.initializer_range, config.layer_norm_epsilon,
                            dtype=policy)
    if objective == "mlm":
        generator = Generator(config, embeddings, config.hidden_size, config.num_heads,
                              config.intermediate_size, dtype=policy)
        return ElectraNetworks(embeddings, generator, None)
    generator = Generator(config, embeddings, config.generator_hidden_size,
                          config.generator_num_heads, config.generator_intermediate_size,
                          dtype=policy)
    discriminator = Discriminator(config, embeddings, dtype=policy)
    return ElectraNetworks(embeddings, generator, discriminator)
