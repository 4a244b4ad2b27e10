"""SavedModel export of a trained run: text in, discriminator (and generator) outputs out.

The SavedModel is self-contained (TF Serving / TF-Hub style): tokenization and packing run
inside the graph with the run's vocabulary, so it is served with plain strings. Loading needs
only TensorFlow and TensorFlow Text (import `tensorflow_text` first: it registers the
tokenizer ops); no electra_tf code and no Keras.

    import tensorflow as tf, tensorflow_text  # noqa: F401
    model = tf.saved_model.load("export/")
    out = model.signatures["serving_default"](text=tf.constant(["the chef ate the meal"]))

Signatures (B = batch, L = data.seq_length of the run, H = hidden size, M = max predictions,
K = top_k):

  serving_default(text: string [B])
  serving_pair(text: string [B], text_pair: string [B])
      `[CLS] text [SEP]` or `[CLS] text [SEP] text_pair [SEP]`, truncated to L (the run's
      packing: `pack_segments`: a single text keeps its first L - 2 tokens, a pair is cut
      longest-first to L - 3), padded. A signature cannot have an optional input, so pairs
      have their own signature; an empty `text_pair` packs like a single text. Outputs:
        replaced_probability  float32 [B, L]  sigmoid of the replaced-token logits, 0 at pads
        sequence_output       float32 [B, L, H]
        pooled_output         float32 [B, H]  the [CLS] vector (ELECTRA has no pooler)
        input_mask            int32   [B, L]
        token_ids             int32   [B, L]
        segment_ids           int32   [B, L]

  encode(input_word_ids, input_mask, input_type_ids: int32 [B, S]), S <= max positions
      The BERT encoder convention, for inputs packed elsewhere: ids in [0, vocab size), type
      ids in [0, type_vocab_size), mask 1 or 0. Outputs replaced_probability,
      sequence_output, pooled_output and input_mask as above, over S.

  fill_mask(text: string [B])
      The generator on text with `[MASK]` markers (each becomes one [MASK] token). The first M
      masks that survive truncation to L are predicted. Outputs:
        top_k_tokens          string  [B, M, K]  "" in unused slots
        top_k_ids             int32   [B, M, K]  0 in unused slots
        top_k_probabilities   float32 [B, M, K]  softmax probabilities, 0 in unused slots
        mask_positions        int32   [B, M]     position in token_ids, 0 in unused slots
        num_masks             int32   [B]        used slots
        token_ids, input_mask int32   [B, L]

Each signature accepts exactly these shapes and values: any other rank (a scalar string, a
2-D batch of texts), mismatched shapes or out-of-range ids raise InvalidArgumentError with a
message naming the signature and the input (the checks run inside the graph; the signatures'
TensorSpecs have unknown shape so that they can, see `_any_shape`).

A run trained with `objective.kind: mlm` has no discriminator: its encoder is the MLM network,
and `replaced_probability` is absent.

Besides the signatures the SavedModel holds the functions `id_to_token(ids: int32 [N]) ->
string [N]` and those behind the signatures (`serve_text`, `serve_pair`, `encode`, `fill_mask`),
`vocab_file` (an Asset: the WordPiece vocab.txt or SentencePiece model), `do_lower_case`,
`seq_length`, `max_predictions` and `top_k` (scalar variables), `model_variables` (all network
weights) and `tokenizer`. `assets.extra/electra_tf.json` describes the export.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from electra_tf.models import ElectraNetworks

SIGNATURE_TEXT = "serving_default"
SIGNATURE_PAIR = "serving_pair"
SIGNATURE_ENCODE = "encode"
SIGNATURE_FILL_MASK = "fill_mask"
MASK_MARKER = "[MASK]"
METADATA_FILE = os.path.join("assets.extra", "electra_tf.json")


def _tf_variables(networks: ElectraNetworks) -> list[tf.Variable]:
    """The tf.Variables behind the Keras variables of both networks (shared ones once)."""
    seen, out = set(), []
    for network in (networks.generator, networks.discriminator):
        if network is None:
            continue
        for variable in network.weights:
            value = getattr(variable, "value", variable)
            if not isinstance(value, tf.Variable):
                raise TypeError(f"cannot export {variable.path}: not backed by a tf.Variable "
                                "(is KERAS_BACKEND set to something other than tensorflow?)")
            if id(value) not in seen:
                seen.add(id(value))
                out.append(value)
    return out


def _any_shape(name: str, dtype: tf.DType) -> tf.TensorSpec:
    """A signature input of unknown shape: its rank is checked inside the graph (`_with_rank`).

    A loaded SavedModel's signature does not enforce the shapes of its TensorSpecs, and the
    graph's kernels trust them: a [None] spec called with a scalar string crashes the process,
    a 2-D one is silently cut to its first column. Only an unknown-rank spec keeps the rank
    check in the graph (a known rank is folded away when the function is traced).
    """
    return tf.TensorSpec(None, dtype, name=name)


def _strings(name: str) -> tf.TensorSpec:
    return _any_shape(name, tf.string)


def _with_rank(tensor: tf.Tensor, rank: int, message: str) -> tf.Tensor:
    """`tensor` (rank 1 or 2) after an in-graph check that raises InvalidArgumentError with
    `message` when called with another rank.

    The result is reshaped to `rank` dimensions whatever the input, a no-op for a valid one:
    the graph optimiser does not keep every op behind the check, and an op that received, say,
    a scalar where it expects a vector would fail first with its own message (or crash).
    """
    check = tf.debugging.assert_rank(tensor, rank, message=message)
    with tf.control_dependencies([check] if check is not None else []):
        checked = tf.identity(tensor)
    if rank == 1:
        return tf.reshape(checked, [-1])
    if rank == 2:
        return tf.reshape(checked, [-1, tf.reduce_prod(tf.shape(checked)[1:])])
    raise ValueError(f"rank {rank} is not supported")


def _text_batch(text: tf.Tensor, signature: str, name: str = "text") -> tf.Tensor:
    return _with_rank(text, 1, (
        f"{signature}: `{name}` must be a 1-D string tensor of shape [batch]; put a single "
        "text in a list, and pass one text (not a row of texts) per example"))


def _in_range(values: tf.Tensor, low: int, high: int, message: str):
    """(checks that every value is in [low, high), `values` clipped to that range).

    The clipping is a no-op for valid values; like `_with_rank`'s reshape, it keeps any other
    op (an embedding lookup) from failing before the checks with a less clear message.
    """
    checks = [tf.debugging.assert_greater_equal(values, tf.constant(low, values.dtype),
                                                message=message),
              tf.debugging.assert_less(values, tf.constant(high, values.dtype),
                                       message=message)]
    return checks, tf.clip_by_value(values, low, high - 1)


def graph_function(*input_signature: tf.TensorSpec):
    """tf.function with a fixed signature; no AutoGraph (the code has no tensor-dependent Python
    control flow, and converting the Keras layers twice per export doubles the tracing time)."""
    return tf.function(input_signature=list(input_signature), autograph=False)


def _check_sizes(networks: ElectraNetworks, seq_length: int, max_predictions: int,
                 top_k: int) -> None:
    max_positions = networks.embeddings.max_positions
    if seq_length > max_positions:
        raise ValueError(f"seq_length {seq_length} exceeds the model's "
                         f"{max_positions} positions")
    if not 1 <= max_predictions <= seq_length - 2:
        raise ValueError(f"max_predictions must be in [1, seq_length - 2], "
                         f"got {max_predictions}")
    if not 1 <= top_k <= networks.embeddings.vocab_size:
        raise ValueError(f"top_k must be in [1, vocab size], got {top_k}")


def _encoder_outputs(networks: ElectraNetworks, ids, mask, segments) -> dict:
    """The encoder's outputs on packed inputs, plus the discriminator's when there is one."""
    sequence_output = networks.encoder_network.encode(ids, mask, segments, training=False)
    out = {"sequence_output": sequence_output,
           "pooled_output": sequence_output[:, 0],
           "input_mask": mask}
    if networks.discriminator is not None:
        logits = networks.discriminator.rtd_logits(sequence_output)
        out["replaced_probability"] = tf.sigmoid(logits) * tf.cast(mask, tf.float32)
    return out


def _pack(segments, seq_length: int, special):
    """`pack_segments` as int32 ids, mask and segment ids of static shape [batch, seq_length]."""
    from electra_tf.data.packing import pack_segments

    packed = pack_segments(segments, seq_length, special)
    ids = tf.cast(packed["input_ids"], tf.int32)
    mask = tf.cast(packed["input_mask"], tf.int32)
    segment_ids = tf.cast(packed["segment_ids"], tf.int32)
    # Static shapes for the serving signature: [batch, seq_length].
    ids = tf.ensure_shape(ids, [None, seq_length])
    mask = tf.ensure_shape(mask, [None, seq_length])
    segment_ids = tf.ensure_shape(segment_ids, [None, seq_length])
    return ids, mask, segment_ids


def _text_outputs(networks: ElectraNetworks, segments, seq_length: int, special) -> dict:
    ids, mask, segment_ids = _pack(segments, seq_length, special)
    out = _encoder_outputs(networks, ids, mask, segment_ids)
    out.update(token_ids=ids, segment_ids=segment_ids)
    return out


def _serve_text_function(networks: ElectraNetworks, tokenizer, seq_length: int):
    """serving_default: one text per example."""
    @graph_function(_strings("text"))
    def serve_text(text):
        text = _text_batch(text, SIGNATURE_TEXT)
        return _text_outputs(networks, [tokenizer.tokenize(text)], seq_length, tokenizer.special)

    return serve_text


def _serve_pair_function(networks: ElectraNetworks, tokenizer, seq_length: int):
    """serving_pair: a text and a second text per example."""
    @graph_function(_strings("text"), _strings("text_pair"))
    def serve_pair(text, text_pair):
        text = _text_batch(text, SIGNATURE_PAIR)
        text_pair = _text_batch(text_pair, SIGNATURE_PAIR, "text_pair")
        tf.debugging.assert_equal(tf.shape(text), tf.shape(text_pair), message=(
            "text and text_pair must have the same batch size"))
        return _text_outputs(networks, [tokenizer.tokenize(text), tokenizer.tokenize(text_pair)],
                             seq_length, tokenizer.special)

    return serve_pair


def _encode_function(networks: ElectraNetworks):
    """encode: the BERT encoder convention, for inputs packed elsewhere."""
    embeddings = networks.embeddings
    max_positions = embeddings.max_positions
    names = ("input_word_ids", "input_mask", "input_type_ids")

    @graph_function(*(_any_shape(name, tf.int32) for name in names))
    def encode(input_word_ids, input_mask, input_type_ids):
        input_word_ids, input_mask, input_type_ids = (
            _with_rank(tensor, 2, f"{SIGNATURE_ENCODE}: `{name}` must be a 2-D int32 tensor "
                                  "of shape [batch, length]; put a single sequence in a list")
            for tensor, name in zip((input_word_ids, input_mask, input_type_ids), names,
                                    strict=True))
        length = tf.shape(input_word_ids)[1]
        checks = [
            tf.debugging.assert_less_equal(length, max_positions, message=(
                f"sequence length must be at most {max_positions} "
                "(the model's max_position_embeddings)")),
            tf.debugging.assert_equal(tf.shape(input_word_ids), tf.shape(input_mask),
                                      message="input_mask must have the ids' shape"),
            tf.debugging.assert_equal(tf.shape(input_word_ids), tf.shape(input_type_ids),
                                      message="input_type_ids must have the ids' shape"),
        ]
        id_checks, input_word_ids = _in_range(input_word_ids, 0, embeddings.vocab_size, (
            f"{SIGNATURE_ENCODE}: input_word_ids must be token ids in [0, "
            f"{embeddings.vocab_size}) (the model's vocabulary)"))
        type_checks, input_type_ids = _in_range(input_type_ids, 0, embeddings.type_vocab_size, (
            f"{SIGNATURE_ENCODE}: input_type_ids must be segment ids in [0, "
            f"{embeddings.type_vocab_size}) (the model's type_vocab_size)"))
        mask_checks, input_mask = _in_range(input_mask, 0, 2, (
            f"{SIGNATURE_ENCODE}: input_mask must be 1 for tokens and 0 for padding"))
        checks += id_checks + type_checks + mask_checks
        with tf.control_dependencies(checks):
            input_word_ids, input_mask, input_type_ids = (
                tf.identity(input_word_ids), tf.identity(input_mask), tf.identity(input_type_ids))
        return _encoder_outputs(networks, input_word_ids, input_mask, input_type_ids)

    return encode


def _tokenize_with_masks(tokenizer, text):
    """Tokenizes `text`, turning each `[MASK]` marker into the [MASK] id (the marker is cut
    out before WordPiece, which would split it into `[`, `mask`, `]`)."""
    text = tf.strings.regex_replace(text, r"(?i)\[mask\]", MASK_MARKER)
    pieces = tf.strings.split(text, sep=MASK_MARKER)          # [B, (pieces)]
    piece_tokens = tokenizer.tokenize(pieces.flat_values)      # [P, (tokens)]
    row_lengths = pieces.row_lengths()
    index_in_row = (tf.range(tf.size(pieces.flat_values, out_type=tf.int64))
                    - tf.repeat(pieces.row_starts(), row_lengths))
    not_last = index_in_row < tf.repeat(row_lengths - 1, row_lengths)
    suffix = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(tf.cast(not_last, tf.int32))],
                tf.constant(tokenizer.special.mask_id, piece_tokens.dtype)),
        tf.cast(not_last, tf.int64))
    joined = tf.concat([piece_tokens, suffix], axis=1)         # marker after each piece
    return tf.RaggedTensor.from_row_splits(joined, pieces.row_splits).merge_dims(1, 2)


def _fill_mask_function(networks: ElectraNetworks, tokenizer, *, seq_length: int,
                        max_predictions: int, top_k: int):
    """fill_mask: the generator's top-k guesses at the first `max_predictions` [MASK]s."""
    special, generator = tokenizer.special, networks.generator

    @graph_function(_strings("text"))
    def fill_mask(text):
        text = _text_batch(text, SIGNATURE_FILL_MASK)
        ids, mask, segment_ids = _pack([_tokenize_with_masks(tokenizer, text)], seq_length,
                                       special)
        is_mask = tf.equal(ids, special.mask_id) & tf.equal(mask, 1)
        # The first `max_predictions` masks: top-k of a score that falls with the position.
        score = tf.where(is_mask, seq_length - tf.range(seq_length)[None, :], 0)
        first, positions = tf.math.top_k(score, k=max_predictions, sorted=True)
        used = first > 0
        positions = tf.where(used, positions, 0)
        sequence_output = generator.encode(ids, mask, segment_ids, training=False)
        logits = generator.mlm_logits(sequence_output, positions)  # [B, M, V] float32
        probabilities, top_ids = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=top_k)
        top_ids = tf.cast(top_ids, tf.int32)
        used_k = tf.broadcast_to(used[:, :, None], tf.shape(top_ids))
        flat_tokens = tokenizer.id_to_token(tf.reshape(top_ids, [-1]))
        tokens = tf.reshape(flat_tokens, tf.shape(top_ids))
        return {
            "top_k_tokens": tf.where(used_k, tokens, ""),
            "top_k_ids": tf.where(used_k, top_ids, 0),
            "top_k_probabilities": tf.where(used_k, probabilities, 0.0),
            "mask_positions": positions,
            "num_masks": tf.reduce_sum(tf.cast(used, tf.int32), axis=1),
            "token_ids": ids,
            "input_mask": mask,
        }

    return fill_mask


def _id_to_token_function(tokenizer):
    @graph_function(tf.TensorSpec([None], tf.int32, name="ids"))
    def id_to_token(ids):
        return tokenizer.id_to_token(ids)

    return id_to_token


class ElectraSavedModel(tf.Module):
    """The exported object: tracked tokenizer and variables, plus the serving functions.

    The Keras networks are used only while tracing (they are captured by the functions'
    closures, not tracked), so the SavedModel's object graph holds plain variables and no
    Keras objects.
    """

    def __init__(self, networks: ElectraNetworks, tokenizer, *, seq_length: int,
                 max_predictions: int, top_k: int = 5, lower_case: bool = True,
                 vocab_path: str | None = None):
        super().__init__(name="electra")
        _check_sizes(networks, seq_length, max_predictions, top_k)
        self.tokenizer = tokenizer
        self.model_variables = _tf_variables(networks)
        self.seq_length = tf.Variable(seq_length, trainable=False, name="seq_length")
        self.max_predictions = tf.Variable(max_predictions, trainable=False,
                                           name="max_predictions")
        self.top_k = tf.Variable(top_k, trainable=False, name="top_k")
        self.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
        if vocab_path is not None:
            self.vocab_file = tf.saved_model.Asset(vocab_path)
        self.serve_text = _serve_text_function(networks, tokenizer, seq_length)
        self.serve_pair = _serve_pair_function(networks, tokenizer, seq_length)
        self.encode = _encode_function(networks)
        self.fill_mask = _fill_mask_function(networks, tokenizer, seq_length=seq_length,
                                             max_predictions=max_predictions, top_k=top_k)
        self.id_to_token = _id_to_token_function(tokenizer)

    def signatures(self) -> dict:
        # The tf.functions themselves (they have input signatures), not concrete functions:
        # tf.saved_model.save traces them in its own context anyway, so tracing them here
        # first would double the export time.
        return {
            SIGNATURE_TEXT: self.serve_text,
            SIGNATURE_PAIR: self.serve_pair,
            SIGNATURE_ENCODE: self.encode,
            SIGNATURE_FILL_MASK: self.fill_mask,
        }


def export_saved_model(networks: ElectraNetworks, tokenizer, out_dir: str, *, seq_length: int,
                       max_predictions: int, top_k: int = 5, lower_case: bool = True,
                       metadata: dict | None = None) -> str:
    """Writes the SavedModel described in this module's docstring to `out_dir`."""
    vocab_path = getattr(tokenizer, "vocab_path", None)
    if vocab_path is not None and not tf.io.gfile.exists(vocab_path):
        vocab_path = None
    module = ElectraSavedModel(networks, tokenizer, seq_length=seq_length,
                               max_predictions=max_predictions, top_k=top_k,
                               lower_case=lower_case, vocab_path=vocab_path)
    signatures = module.signatures()
    tf.saved_model.save(module, out_dir, signatures=signatures)
    info = {
        "signatures": {name: [spec.name for spec in fn.input_signature]
                       for name, fn in signatures.items()},
        "seq_length": seq_length, "max_predictions": max_predictions, "top_k": top_k,
        "lower_case": lower_case, "vocab_size": int(networks.embeddings.vocab_size),
        "has_discriminator": networks.discriminator is not None,
        "load": "import tensorflow as tf, tensorflow_text; tf.saved_model.load(path)",
        **(metadata or {}),
    }
    tf.io.gfile.makedirs(os.path.join(out_dir, "assets.extra"))
    with tf.io.gfile.GFile(os.path.join(out_dir, METADATA_FILE), "w") as f:
        f.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return out_dir
