"""Building blocks of the BERT-style post-LayerNorm encoder used by both ELECTRA networks.

Every detail follows the paper's code (docs/algorithm.md, "Sizes"): exact (erf) GELU, LayerNorm
epsilon 1e-12, truncated-normal initialisation with stddev 0.02, additive -10000 attention mask
on padding, no pooler.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@tf.custom_gradient
def _exact_gelu(x):
    """x * Phi(x) in float32 with its derivative Phi(x) + x * phi(x) written out: one erfc
    forward, reused backward, instead of differentiating through erfc op by op."""
    cdf = 0.5 * tf.math.erfc(x * -_SQRT_HALF)

    def grad(upstream):
        return upstream * (cdf + x * (tf.exp(-0.5 * tf.square(x)) * _INV_SQRT_2PI))

    return x * cdf, grad


def gelu(x):
    """The exact GELU, x * Phi(x). (`keras.ops.gelu` defaults to the tanh approximation.)

    Under mixed precision it is evaluated in float32 (TensorFlow's CPU erfc on bfloat16 is
    several times slower than on float32, and float32 is the more accurate).
    """
    x = tf.convert_to_tensor(x)
    if x.dtype != tf.float32:
        return tf.cast(_exact_gelu(tf.cast(x, tf.float32)), x.dtype)
    return _exact_gelu(x)


def _add_layer_norm(x, residual, gamma, beta, epsilon):
    z = tf.cast(x, tf.float32) + tf.cast(residual, tf.float32)
    centred = z - tf.reduce_mean(z, axis=-1, keepdims=True)
    variance = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
    out = centred * tf.math.rsqrt(variance + epsilon) * gamma + beta
    return tf.cast(out, x.dtype)


_add_layer_norm_xla = tf.function(_add_layer_norm, jit_compile=True)


def add_layer_norm(x, residual, layer: keras.layers.LayerNormalization, training=None):
    """LayerNorm(x + residual) with `layer`'s scale, offset and epsilon, statistics in float32.

    In training it is one XLA-compiled function (forward and gradient), even when the
    surrounding step is not compiled: the add, the two moments and the affine map become one
    pass over the tensor instead of about ten TensorFlow ops each way (docs/performance.md).
    Inference (evaluation, exported SavedModels) runs the same arithmetic as plain TensorFlow
    ops, so serving needs no XLA. `layer` only holds the variables, so checkpoints keep their
    LayerNorm names.
    """
    fn = _add_layer_norm_xla if training else _add_layer_norm
    return fn(x, residual, tf.convert_to_tensor(layer.gamma), tf.convert_to_tensor(layer.beta),
              float(layer.epsilon))


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
        words = ops.take(self.word_embeddings, input_ids, axis=0)
        words_and_types = words + ops.take(self.token_type_embeddings, segment_ids, axis=0)
        positions = ops.expand_dims(self.position_embeddings[:seq_length], 0)
        x = add_layer_norm(ops.cast(words_and_types, self.compute_dtype),
                           ops.cast(positions, self.compute_dtype), self.layer_norm, training)
        return self.dropout(x, training=training)


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

    def _project(self, x, layer, activation=None):
        """`layer`'s affine map on a 2-D [tokens, in] input: one MatMul + BiasAdd (which
        Grappler fuses), without Keras' rank-3 tensordot reshapes."""
        dtype = self.compute_dtype
        y = tf.nn.bias_add(tf.matmul(x, tf.cast(layer.kernel, dtype)),
                           tf.cast(layer.bias, dtype))
        return y if activation is None else activation(y)

    def call(self, x, attention_bias, training=None):
        """x: [batch, seq, hidden]; attention_bias: [batch, 1, 1, seq] float32 (0 or -10000)."""
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        heads, head_size, dtype = self.num_heads, self.head_size, self.compute_dtype
        flat = tf.reshape(x, (-1, self.hidden_size))                       # [tokens, H]
        scale = tf.cast(1.0 / math.sqrt(head_size), dtype)

        def heads_of(projected):                                            # [b, h, s, d]
            return tf.transpose(tf.reshape(projected, (batch, length, heads, head_size)),
                                (0, 2, 1, 3))

        q = heads_of(self._project(flat, self.query) * scale)
        k = heads_of(self._project(flat, self.key))
        v = heads_of(self._project(flat, self.value))
        scores = tf.matmul(q, k, transpose_b=True)                          # [b, h, s, s]
        # Softmax in float32 under mixed precision (casts are no-ops in float32); the mask is
        # additive, as in the reference. (Keras casts float inputs of a layer call to the
        # compute dtype; undo that for the bias.)
        bias = tf.cast(attention_bias, tf.float32)
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + bias, axis=-1)
        probs = self.attention_dropout(tf.cast(probs, dtype), training=training)
        context = tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3))           # [b, s, h, d]
        context = tf.reshape(context, (-1, self.hidden_size))
        attended = self._project(context, self.attention_output)
        flat = add_layer_norm(flat, self.dropout(attended, training=training),
                              self.attention_layer_norm, training)
        ffn = self._project(self._project(flat, self.intermediate, gelu), self.ffn_output)
        out = add_layer_norm(flat, self.dropout(ffn, training=training), self.output_layer_norm,
                             training)
        return tf.reshape(out, (batch, length, self.hidden_size))


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
