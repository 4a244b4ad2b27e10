"""Building blocks of the BERT-style post-LayerNorm encoder used by both ELECTRA networks.

Every detail follows the reference: exact (erf) GELU, LayerNorm epsilon 1e-12, truncated-normal
initialisation with stddev 0.02, additive -10000 attention mask on padding, no pooler.
"""

from __future__ import annotations

import math

import keras
from keras import ops


def gelu(x):
    """The exact GELU, x * Phi(x). `keras.ops.gelu` defaults to the tanh approximation."""
    return ops.gelu(x, approximate=False)


def truncated_normal(stddev: float) -> keras.initializers.Initializer:
    return keras.initializers.TruncatedNormal(stddev=stddev)


def layer_norm(epsilon: float, name: str, dtype=None) -> keras.layers.LayerNormalization:
    # Keras defaults to epsilon 1e-3; the reference uses 1e-12.
    return keras.layers.LayerNormalization(epsilon=epsilon, name=name, dtype=dtype)


class Embeddings(keras.layers.Layer):
    """Word + absolute position + token type embeddings, summed, LayerNorm, dropout.

    One instance is shared by the generator and the discriminator (all four variables).
    """

    def __init__(self, vocab_size: int, embedding_size: int, max_positions: int,
                 type_vocab_size: int, dropout: float, initializer_range: float,
                 epsilon: float, **kwargs):
        super().__init__(name=kwargs.pop("name", "embeddings"), **kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_positions = max_positions
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm = layer_norm(epsilon, "LayerNorm", self.dtype_policy)
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.build()

    def build(self, input_shape=None):
        init = truncated_normal(self.initializer_range)
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(self.vocab_size, self.embedding_size), initializer=init)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(self.max_positions, self.embedding_size),
            initializer=init)
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(self.type_vocab_size, self.embedding_size),
            initializer=init)
        self.layer_norm.build((None, None, self.embedding_size))

    def call(self, input_ids, segment_ids, training=None):
        seq_length = ops.shape(input_ids)[1]
        x = ops.take(self.word_embeddings, input_ids, axis=0)
        x = x + ops.expand_dims(self.position_embeddings[:seq_length], 0)
        x = x + ops.take(self.token_type_embeddings, segment_ids, axis=0)
        return self.dropout(self.layer_norm(x), training=training)


class TransformerLayer(keras.layers.Layer):
    """Self-attention and feed-forward blocks, each followed by dropout and residual LayerNorm."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float,
                 attention_dropout: float, initializer_range: float, epsilon: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        policy = self.dtype_policy

        def dense(units, name, activation=None):
            return keras.layers.Dense(units, activation=activation, name=name, dtype=policy,
                                      kernel_initializer=truncated_normal(initializer_range))

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_layer_norm = layer_norm(epsilon, "attention_LayerNorm", policy)
        self.intermediate = dense(intermediate_size, "intermediate", activation=gelu)
        self.ffn_output = dense(hidden_size, "output")
        self.output_layer_norm = layer_norm(epsilon, "output_LayerNorm", policy)
        self.attention_dropout = keras.layers.Dropout(attention_dropout, dtype=policy)
        self.dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.build()

    def build(self, input_shape=None):
        hidden = (None, None, self.hidden_size)
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate,
                      self.attention_layer_norm, self.output_layer_norm):
            layer.build(hidden)
        self.ffn_output.build((None, None, self.intermediate.units))

    def _split_heads(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (batch, length, self.num_heads, self.head_size))

    def call(self, x, attention_bias, training=None):
        """x: [batch, seq, hidden]; attention_bias: [batch, 1, 1, seq] float32 (0 or -10000)."""
        q = self._split_heads(self.query(x))
        k = self._split_heads(self.key(x))
        v = self._split_heads(self.value(x))
        scores = ops.einsum("bqhd,bkhd->bhqk", q, k) * (1.0 / math.sqrt(self.head_size))
        # Softmax in float32 under mixed precision; the mask is additive, as in the reference.
        # (Keras casts float inputs of a layer call to the compute dtype; undo that for the bias.)
        bias = ops.cast(attention_bias, "float32")
        probs = ops.softmax(ops.cast(scores, "float32") + bias, axis=-1)
        probs = self.attention_dropout(ops.cast(probs, x.dtype), training=training)
        context = ops.einsum("bhqk,bkhd->bqhd", probs, v)
        context = ops.reshape(context, ops.shape(x))
        attended = self.attention_output(context)
        x = self.attention_layer_norm(x + self.dropout(attended, training=training))
        ffn = self.ffn_output(self.intermediate(x))
        return self.output_layer_norm(x + self.dropout(ffn, training=training))


class Encoder(keras.layers.Layer):
    """Optional embeddings_project (E -> H when they differ) followed by L transformer layers."""

    def __init__(self, embedding_size: int, hidden_size: int, num_layers: int, num_heads: int,
                 intermediate_size: int, dropout: float, attention_dropout: float,
                 initializer_range: float, epsilon: float, **kwargs):
        super().__init__(**kwargs)
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        policy = self.dtype_policy
        self.embeddings_project = None
        if embedding_size != hidden_size:
            # The TF1 reference leaves this Dense at Keras' default Glorot-uniform init.
            self.embeddings_project = keras.layers.Dense(
                hidden_size, name="embeddings_project", dtype=policy)
        self.layers = [
            TransformerLayer(hidden_size, num_heads, intermediate_size, dropout,
                             attention_dropout, initializer_range, epsilon,
                             name=f"layer_{i}", dtype=policy)
            for i in range(num_layers)
        ]
        self.build()

    def build(self, input_shape=None):
        if self.embeddings_project is not None:
            self.embeddings_project.build((None, None, self.embedding_size))

    def call(self, embedded, input_mask, training=None):
        """embedded: [batch, seq, E]; input_mask: [batch, seq] (1 real token, 0 padding)."""
        mask = ops.cast(input_mask, "float32")
        attention_bias = (1.0 - mask[:, None, None, :]) * -10000.0
        x = embedded
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        for layer in self.layers:
            x = layer(x, attention_bias, training=training)
        return x
