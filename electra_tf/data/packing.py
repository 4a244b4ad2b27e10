"""Packing tokenized documents into fixed-length examples (reference recipe), as graph code.

`pack_documents` turns a batch of tokenized documents into examples, vectorised over the batch:
a `tf.while_loop` advances one example per document per iteration, and all token gathering is
done at once on an [examples, seq_length] grid. Per example (reference, ELECTRA
build_pretraining_dataset):

* Target length: `seq_length`, or with probability `short_seq_prob` uniform in [5, seq_length].
* Sentences of one document are accumulated until they hold at least the target length (or the
  document ends). Examples never cross documents; one document gives as many examples as it fills.
* With probability `single_segment_prob` everything goes to segment A. Otherwise A takes the
  leading sentences while they fit in (target - 3) // 2 tokens; the first sentence that overflows
  joins A with probability 1/2 (always when A is still empty); the rest is segment B. A is always a
  contiguous prefix (the reference code could move a later short sentence into A, out of order;
  we keep text in order).
* A is truncated to seq_length - 2 tokens, B to what is left after ``[CLS] A [SEP]`` and the final
  ``[SEP]``: ``[CLS] A [SEP] B [SEP]`` (no B: ``[CLS] A [SEP]``), segment ids 0 for
  [CLS]/A/first [SEP], 1 for B and its [SEP], padding with the pad id and input_mask 0.

Two deliberate additions: a sentence longer than seq_length - 3 tokens (a 10 MB line, say) is cut
into pieces of ceil(seq_length / 2) tokens first, so its text fills many examples instead of being
truncated away; and a document longer than 64 sequences is packed as independent parts of
64 * seq_length tokens (cut between sentences), which bounds the sequential loop (a part boundary
costs at most one shorter example per 64).

`pack_segments` is the serving-time counterpart for one or two already tokenized texts.

Seeding: the trainer's pipeline packs batches of documents with one seed per call, so a document's
examples depend on the batch it lands in. `pack_document` packs one document with its own seed
(`document_seeds`: a keyed hash of a stable document name such as ``file#index``), so a
document's examples depend only on its text and name; the Beam job (pipelines/) packs through
it, and tests compare it with this module run on the same documents and seeds.
"""

from __future__ import annotations

import tensorflow as tf

from electra_tf.data.masking import RNG_ALG, SpecialTokens

_MIN_TARGET = 5
_CHUNK_SEQUENCES = 64
_HASH_BUCKETS = (1 << 63) - 1


def _assemble(tokens: tf.Tensor, a_start: tf.Tensor, a_len: tf.Tensor, b_start: tf.Tensor,
              b_len: tf.Tensor, seq_length: int, special: SpecialTokens) -> dict[str, tf.Tensor]:
    """Lays out ``[CLS] A [SEP] (B [SEP])`` for each row; A/B are ranges of the flat `tokens`."""
    tokens = tf.concat([tf.cast(tokens, tf.int32), [special.pad_id]], axis=0)  # never empty
    j = tf.range(seq_length, dtype=tf.int32)[None, :]
    a_start, a_len = a_start[:, None], a_len[:, None]
    b_start, b_len = b_start[:, None], b_len[:, None]
    has_b = b_len > 0
    in_a = (j >= 1) & (j <= a_len)
    in_b = (j >= a_len + 2) & (j < a_len + 2 + b_len)
    seps = (j == a_len + 1) | (has_b & (j == a_len + 2 + b_len))
    length = a_len + 2 + tf.where(has_b, b_len + 1, 0)
    source = tf.where(in_a, a_start + j - 1, tf.where(in_b, b_start + j - a_len - 2, 0))
    ids = tf.gather(tokens, source)
    ids = tf.where(in_a | in_b, ids, special.pad_id)
    ids = tf.where(seps, special.sep_id, ids)
    ids = tf.where(j == 0, special.cls_id, ids)
    input_mask = j < length
    segment_ids = input_mask & (j >= a_len + 2)
    return {"input_ids": ids,
            "input_mask": tf.cast(input_mask, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32)}


def _split_long_sentences(lengths: tf.Tensor, seq_length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Cuts sentences longer than seq_length - 3 into pieces of ceil(seq_length / 2) tokens.

    Returns (piece lengths, index of the sentence each piece comes from)."""
    piece = (seq_length + 1) // 2
    pieces = tf.where(lengths > seq_length - 3, (lengths + piece - 1) // piece, 1)
    pieces = tf.maximum(pieces, 1)
    which = tf.repeat(tf.range(tf.size(lengths)), pieces)
    first = tf.cumsum(pieces, exclusive=True)
    k = tf.range(tf.reduce_sum(pieces)) - tf.gather(first, which)   # piece index in its sentence
    total = tf.gather(lengths, which)
    is_last = k == tf.gather(pieces, which) - 1
    return tf.where(is_last, total - k * piece, piece), which


def pack_documents(documents: tf.RaggedTensor, seed: tf.Tensor, *, seq_length: int,
                   special: SpecialTokens, short_seq_prob: float = 0.05,
                   single_segment_prob: float = 0.10, return_details: bool = False
                   ) -> dict[str, tf.Tensor]:
    """Packs tokenized documents int [docs, (sentences), (tokens)] into examples.

    Args:
      seed: int [2], stateless seed; the same seed and documents give the same examples.
      return_details: also return per example `document` (index in the batch),
        `target_length` and `single_segment` (the random decisions), for tests and statistics.

    Returns int32 `input_ids`, `input_mask`, `segment_ids`, each [examples, seq_length]; examples
    come out round-robin (first example of every document, then the second, ...).
    """
    if seq_length < 8:
        raise ValueError(f"seq_length must be at least 8, got {seq_length}")
    documents = tf.cast(documents, tf.int32) if documents.dtype != tf.int32 else documents
    tokens = documents.flat_values
    lengths = tf.cast(documents.values.row_lengths(), tf.int32)            # per sentence
    sentence_doc = tf.cast(documents.value_rowids(), tf.int32)
    num_docs = tf.cast(documents.nrows(), tf.int32)

    # Pieces: long sentences cut, empty sentences dropped (token offsets are unaffected).
    lengths, which = _split_long_sentences(lengths, seq_length)
    nonempty = lengths > 0
    lengths = tf.boolean_mask(lengths, nonempty)
    piece_doc = tf.boolean_mask(tf.gather(sentence_doc, which), nonempty)
    offsets = tf.concat([[0], tf.cumsum(lengths)], axis=0)                  # [pieces + 1]
    # Documents longer than _CHUNK_SEQUENCES sequences are packed as independent chunks (cut at
    # piece boundaries), so the loop below runs a bounded number of iterations.
    num_pieces = tf.size(lengths)
    per_doc = tf.math.unsorted_segment_sum(tf.ones_like(piece_doc), piece_doc, num_docs)
    first_piece = tf.gather(tf.cumsum(per_doc, exclusive=True), piece_doc)
    in_doc = offsets[:-1] - tf.gather(offsets, first_piece)          # token offset in its doc
    chunk = in_doc // (_CHUNK_SEQUENCES * seq_length)
    new_part = tf.concat([[True], (piece_doc[1:] != piece_doc[:-1])
                          | (chunk[1:] != chunk[:-1])], axis=0)[:num_pieces]
    doc_start = tf.cast(tf.where(new_part)[:, 0], tf.int32)               # per part
    doc_end = tf.concat([doc_start[1:], [num_pieces]], axis=0)
    part_doc = tf.gather(piece_doc, doc_start)
    num_docs = tf.size(doc_start)

    seed = tf.cast(seed, tf.int64)
    max_len = tf.constant(seq_length, tf.int32)

    def step(i, cursor, starts, splits, ends, docs, targets, singles):
        active = cursor < doc_end
        draws = tf.random.stateless_uniform(
            [num_docs, 4], tf.random.experimental.stateless_fold_in(seed, tf.cast(i, tf.int64)),
            alg=RNG_ALG)
        short = draws[:, 0] < short_seq_prob
        target = tf.where(short, _MIN_TARGET + tf.cast(
            tf.floor(draws[:, 1] * tf.cast(max_len - _MIN_TARGET + 1, tf.float32)), tf.int32),
            max_len)
        target = tf.minimum(target, max_len)
        single = draws[:, 2] < single_segment_prob
        base = tf.gather(offsets, cursor)
        # First piece index e with offsets[e] >= base + target: pieces [cursor, e) reach it.
        end = tf.searchsorted(offsets, base + target, side="left", out_type=tf.int32)
        end = tf.clip_by_value(end, cursor + 1, doc_end)
        first_target = tf.where(single, tf.int32.max // 2, (target - 3) // 2)
        overflow = tf.searchsorted(offsets, base + first_target, side="left",
                                   out_type=tf.int32) - 1   # first piece reaching first_target
        split = tf.where(overflow >= end, end,
                         tf.where(overflow <= cursor, cursor + 1,
                                  tf.where(draws[:, 3] < 0.5, overflow + 1, overflow)))
        picked = tf.where(active)[:, 0]
        return (i + 1, tf.where(active, end, cursor),
                starts.write(i, tf.gather(cursor, picked)),
                splits.write(i, tf.gather(split, picked)),
                ends.write(i, tf.gather(end, picked)),
                docs.write(i, tf.gather(part_doc, picked)),
                targets.write(i, tf.gather(target, picked)),
                singles.write(i, tf.gather(single, picked)))

    def arrays(dtype):
        return tf.TensorArray(dtype, size=0, dynamic_size=True, infer_shape=False,
                              element_shape=tf.TensorShape([None]))

    loop_vars = (tf.constant(0), doc_start, arrays(tf.int32), arrays(tf.int32),
                 arrays(tf.int32), arrays(tf.int32), arrays(tf.int32), arrays(tf.bool))
    _, _, starts, splits, ends, docs, targets, singles = tf.while_loop(
        lambda i, cursor, *_: tf.reduce_any(cursor < doc_end), step, loop_vars,
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None]))
        + tuple(tf.TensorShape(None) for _ in loop_vars[2:]))
    start, split, end = starts.concat(), splits.concat(), ends.concat()
    a_start = tf.gather(offsets, start)
    b_start = tf.gather(offsets, split)
    a_len = tf.minimum(b_start - a_start, seq_length - 2)
    b_len = tf.minimum(tf.gather(offsets, end) - b_start, tf.maximum(0, seq_length - a_len - 3))
    out = _assemble(tokens, a_start, a_len, b_start, b_len, seq_length, special)
    if return_details:
        out.update(document=docs.concat(), target_length=targets.concat(),
                   single_segment=singles.concat())
    return out


def document_seeds(keys: tf.Tensor, seed: int) -> tf.Tensor:
    """int64 [n, 2] stateless packing seeds of the documents named by string `keys` [n].

    A keyed hash (SipHash) of each name under `seed` (>= 0): stable across runs, machines and
    batchings, different for every name."""
    keys = tf.convert_to_tensor(keys, tf.string)
    return tf.stack([tf.strings.to_hash_bucket_strong(keys, _HASH_BUCKETS, [seed, 1]),
                     tf.strings.to_hash_bucket_strong(keys, _HASH_BUCKETS, [seed, 2])], axis=-1)


def pack_document(document: tf.RaggedTensor, seed: tf.Tensor, *, seq_length: int,
                  special: SpecialTokens, short_seq_prob: float = 0.05,
                  single_segment_prob: float = 0.10) -> dict[str, tf.Tensor]:
    """Packs one tokenized document int [(sentences), (tokens)] with its own seed int64 [2]
    (see `document_seeds`): `pack_documents` on a batch of this document alone."""
    return pack_documents(tf.expand_dims(document, 0), seed, seq_length=seq_length,
                          special=special, short_seq_prob=short_seq_prob,
                          single_segment_prob=single_segment_prob)


def pack_segments(segments: list[tf.RaggedTensor], seq_length: int,
                  special: SpecialTokens) -> dict[str, tf.Tensor]:
    """``[CLS] A [SEP] (B [SEP])`` for a batch of one or two tokenized texts (serving).

    Pairs are truncated longest-first (one token at a time from the longer, B on ties, as BERT
    does) to fit seq_length - 3 tokens; a single text, or a pair whose B is empty, is truncated
    to seq_length - 2. Returns int32 [batch, seq_length] `input_ids`, `input_mask`,
    `segment_ids`.
    """
    if len(segments) not in (1, 2):
        raise ValueError(f"pack_segments takes one or two segments, got {len(segments)}")
    first = segments[0]
    a = tf.cast(first.row_lengths(), tf.int32)
    a_start = tf.cast(first.row_starts(), tf.int32)
    if len(segments) == 1:
        zeros = tf.zeros_like(a)
        return _assemble(first.flat_values, a_start, tf.minimum(a, seq_length - 2), zeros,
                         zeros, seq_length, special)
    second = segments[1]
    b = tf.cast(second.row_lengths(), tf.int32)
    budget = seq_length - 3
    fits = a + b <= budget
    shorter = tf.minimum(a, b)
    keep_shorter = 2 * shorter <= budget
    a_len = tf.where(fits, a, tf.where(keep_shorter, tf.where(a <= b, a, budget - b),
                                       (budget + 1) // 2))
    b_len = tf.where(fits, b, tf.where(keep_shorter, tf.where(a <= b, budget - a, b),
                                       budget // 2))
    a_len = tf.where(b == 0, tf.minimum(a, seq_length - 2), a_len)  # an empty B: a single text
    tokens = tf.concat([tf.cast(first.flat_values, tf.int32),
                        tf.cast(second.flat_values, tf.int32)], axis=0)
    b_start = tf.cast(second.row_starts(), tf.int32) + tf.size(first.flat_values, tf.int32)
    return _assemble(tokens, a_start, a_len, b_start, b_len, seq_length, special)
