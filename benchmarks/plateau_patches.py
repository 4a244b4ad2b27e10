"""Monkeypatches of electra_tf for the plateau sweep (`benchmarks/plateau_sweep.py`): each
changes one thing about the networks in the sweep's worker process only, never the library.

* ``alibi``: a fixed score bias -|i-j|/2^(h+1) per head (Press et al. 2022).
* ``relbias``: a learned bias per head and clipped offset -8..8, initialised at 0.
* ``oracle``: layer 0's heads forced onto the previous (even heads) / next (odd) token.
* ``shift``: the encoder input gets Dense(embedding of i-1) + Dense(embedding of i+1).
* ``glorot``: every truncated-normal kernel and table initialised Glorot-uniform instead.
* ``relu``: ReLU in the FFNs and the discriminator head instead of the exact GELU.
* ``fanin``: the FFN and discriminator-head kernels re-initialised by fan-in (He normal for
  the two that feed an activation, LeCun normal for the FFN output); combine with ``relu``.
* ``preln``: pre-LayerNorm blocks (x + f(LN(x))), the layer's two LayerNorms moved in front of
  attention and FFN, and a parameter-free normalisation of the encoder's output.
* ``pos_std=X`` / ``pos_sin=X``: the position table drawn with stddev X / sinusoidal at X.
* ``genlr=X``: the generator's own variables (not the shared embeddings) train at X times the
  learning rate, through the optimizer's per-variable multipliers (full runs only).
"""

from __future__ import annotations

import math

_MODE: dict = {"bias": None, "max_offset": 8, "preln": False}


def _score_bias(layer, length, heads):
    """[heads, s, s] float32 bias added to the attention scores, or None."""
    import tensorflow as tf

    mode = _MODE["bias"]
    i, j = tf.range(length)[:, None], tf.range(length)[None, :]
    if mode == "alibi":
        slopes = tf.constant([2.0 ** -(h + 1) for h in range(heads)], tf.float32)
        return -slopes[:, None, None] * tf.cast(tf.abs(i - j), tf.float32)[None]
    if mode == "relbias":
        k = _MODE["max_offset"]
        return tf.gather(layer.rel_bias, tf.clip_by_value(j - i, -k, k) + k, axis=1)
    if mode == "oracle" and layer.name.endswith("layer_0"):
        return tf.stack([tf.where(j - i == (-1 if h % 2 == 0 else 1), 0.0, -10000.0)
                         for h in range(heads)])
    return None


def _patched_call(self, x, attention_bias, training=None):
    """electra_tf's TransformerLayer.call plus `_score_bias`; keeps the last attention probs."""
    import tensorflow as tf

    from electra_tf.models import layers as L

    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    heads, head_size, dtype = self.num_heads, self.head_size, self.compute_dtype
    flat = tf.reshape(x, (-1, self.hidden_size))
    residual = flat
    if _MODE["preln"]:
        flat = self.attention_layer_norm(flat)
    scale = 1.0 / math.sqrt(head_size)
    kernel = tf.concat([self.query.kernel * scale, self.key.kernel, self.value.kernel], 1)
    bias = tf.concat([self.query.bias * scale, self.key.bias, self.value.bias], 0)
    qkv = tf.nn.bias_add(tf.matmul(flat, tf.cast(kernel, dtype)), tf.cast(bias, dtype))
    qkv = tf.transpose(tf.reshape(qkv, (batch, length, 3, heads, head_size)), (2, 0, 3, 1, 4))
    q, k, v = tf.unstack(qkv, axis=0)
    scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32)
    extra = _score_bias(self, length, heads)
    if extra is not None:
        scores = scores + extra[None]
    probs = tf.nn.softmax(scores + tf.cast(attention_bias, tf.float32), axis=-1)
    if not tf.inside_function():
        self.last_probs = probs
    probs = self.attention_dropout(tf.cast(probs, dtype), training=training)
    context = tf.reshape(tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3)), (-1, self.hidden_size))
    attended = self._project(context, self.attention_output)
    if _MODE["preln"]:
        flat = residual + self.dropout(attended, training=training)
        ffn = self._project(self._project(self.output_layer_norm(flat), self.intermediate,
                                          L.gelu), self.ffn_output)
        return tf.reshape(flat + self.dropout(ffn, training=training),
                          (batch, length, self.hidden_size))
    flat = L.add_layer_norm(flat, self.dropout(attended, training=training),
                            self.attention_layer_norm, training)
    ffn = self._project(self._project(flat, self.intermediate, L.gelu), self.ffn_output)
    out = L.add_layer_norm(flat, self.dropout(ffn, training=training), self.output_layer_norm,
                           training)
    return tf.reshape(out, (batch, length, self.hidden_size))


def _patch_token_shift(L) -> None:
    """Encoder input += Dense(embedding of token i-1) + Dense(embedding of token i+1): a
    width-3 convolution beside attention (Glorot init), so the first block sees its neighbours
    without having to learn to attend to them."""
    import keras
    import tensorflow as tf

    build = L.Encoder.build

    def build_with_shift(self, input_shape=None):
        build(self, input_shape)
        if not hasattr(self, "shift_prev"):
            self.shift_prev = keras.layers.Dense(self.hidden_size, use_bias=False,
                                                 name="shift_prev")
            self.shift_next = keras.layers.Dense(self.hidden_size, use_bias=False,
                                                 name="shift_next")
            self.shift_prev.build((None, None, self.embedding_size))
            self.shift_next.build((None, None, self.embedding_size))

    def call_with_shift(self, embedded, input_mask, training=None):
        mask = tf.cast(input_mask, embedded.dtype)[:, :, None]
        e = embedded * mask
        prev = tf.pad(e[:, :-1], [[0, 0], [1, 0], [0, 0]])
        nxt = tf.pad(e[:, 1:], [[0, 0], [0, 1], [0, 0]])
        x = self.shift_prev(prev) + self.shift_next(nxt)
        x += self.embeddings_project(embedded) if self.embeddings_project is not None else embedded
        bias = (1.0 - tf.cast(input_mask, tf.float32)[:, None, None, :]) * -10000.0
        for layer in self.layers:
            x = layer(x, bias, training=training)
        return x

    L.Encoder.build, L.Encoder.call = build_with_shift, call_with_shift
    _name_shift_kernels()


def _name_shift_kernels() -> None:
    """Gives the shift kernels stable names, so checkpoints save them and exports, demos and
    fine-tuning restore them (without this they would start those at a fresh random init)."""
    from electra_tf.finetune import model as finetune_model
    from electra_tf.models import names

    named = names.encoder_variables

    def with_shift(scope, encoder):
        out = named(scope, encoder)
        for part in ("shift_prev", "shift_next"):
            out[f"{scope}/embeddings_project/{part}/kernel"] = getattr(encoder, part).kernel
        return out

    names.encoder_variables = finetune_model.encoder_variables = with_shift


def _patch_preln(L) -> None:
    """Pre-LN blocks (in `_patched_call`) and a final normalisation of the encoder output,
    without scale and offset (the head's Dense can supply both)."""
    import tensorflow as tf

    _MODE["preln"] = True
    call = L.Encoder.call

    def call_normalised(self, embedded, input_mask, training=None):
        x = call(self, embedded, input_mask, training=training)
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + 1e-12)

    L.Encoder.call = call_normalised


def _patch_fanin(L) -> None:
    """After each build, the FFN kernels and the discriminator's head Dense get fan-in inits."""
    import keras

    from electra_tf.models import networks

    def redraw(kernel, initializer):
        kernel.assign(initializer(kernel.shape, dtype=kernel.dtype))

    build_layer = L.TransformerLayer.build

    def build_fanin(self, input_shape=None):
        build_layer(self, input_shape)
        redraw(self.intermediate.kernel, keras.initializers.HeNormal())
        redraw(self.ffn_output.kernel, keras.initializers.LecunNormal())

    init_disc = networks.Discriminator.__init__

    def init_fanin(self, *args, **kwargs):
        init_disc(self, *args, **kwargs)
        redraw(self.head_dense.kernel, keras.initializers.HeNormal())

    L.TransformerLayer.build, networks.Discriminator.__init__ = build_fanin, init_fanin


def _patch_generator_lr(ratio: float) -> None:
    """Pretraining's optimizer gets multiplier `ratio` for every generator variable that the
    discriminator does not share, 1 for the rest (the embeddings and the discriminator)."""
    from electra_tf import pretraining

    def multipliers(self, model):
        shared = {id(v) for v in model.embeddings.trainable_variables}
        own = {id(v) for v in model.generator.trainable_variables if id(v) not in shared}
        return [ratio if id(v) in own else 1.0 for v in model.trainable_variables]

    pretraining.PretrainingTask.learning_rate_multipliers = multipliers


def apply_patch(spec: str) -> None:
    import numpy as np

    from electra_tf.models import layers as L

    if spec.startswith("genlr="):
        _patch_generator_lr(float(spec.split("=", 1)[1]))
        return

    L.TransformerLayer.call = _patched_call
    if spec in ("alibi", "relbias", "oracle"):
        _MODE["bias"] = spec
    if spec == "relbias":
        build = L.TransformerLayer.build

        def build_with_bias(self, input_shape=None):
            build(self, input_shape)
            if not hasattr(self, "rel_bias"):
                self.rel_bias = self.add_weight(
                    name="rel_bias", shape=(self.num_heads, 2 * _MODE["max_offset"] + 1),
                    initializer="zeros")

        L.TransformerLayer.build = build_with_bias
    elif spec == "shift":
        _patch_token_shift(L)
    elif spec == "preln":
        _patch_preln(L)
    elif spec == "fanin":
        _patch_fanin(L)
    elif spec in ("glorot", "relu"):
        import keras
        import tensorflow as tf

        from electra_tf.models import networks
        if spec == "glorot":      # every truncated-normal kernel/table -> Glorot uniform
            L.truncated_normal = networks.truncated_normal = (
                lambda stddev: keras.initializers.GlorotUniform())
        else:                     # ReLU in the FFNs and the heads instead of the exact GELU
            L.gelu = networks.gelu = tf.nn.relu
    elif spec.startswith(("pos_std=", "pos_sin=")):
        std = float(spec.split("=", 1)[1])
        build_embeddings = L.Embeddings.build

        def build_positions(self, input_shape=None):
            build_embeddings(self, input_shape)
            n, e = self.max_positions, self.embedding_size
            if spec.startswith("pos_sin="):
                angle = np.arange(n)[:, None] / 10000.0 ** (2 * np.arange(e // 2)[None] / e)
                table = np.concatenate([np.sin(angle), np.cos(angle)], 1) * std * math.sqrt(2)
            else:
                table = np.clip(np.random.default_rng(0).normal(0, std, (n, e)), -2 * std,
                                2 * std)
            self.position_embeddings.assign(table.astype(np.float32))

        L.Embeddings.build = build_positions
    elif spec not in ("alibi", "relbias", "oracle", "none", "glorot", "relu"):
        raise SystemExit(f"unknown patch {spec!r}")


