"""Packing rules (reference recipe) and the serving helper pack_segments."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.data.masking import SpecialTokens
from electra_tf.data.packing import pack_documents, pack_segments

SPECIAL = SpecialTokens(pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4)


def make_documents(rng, num_docs, sentences=(1, 30), length=(1, 40)):
    """Token t = doc * 1_000_000 + sentence * 1000 + position (+10): every token says where
    it came from."""
    docs = []
    for d in range(num_docs):
        doc = []
        for s in range(int(rng.integers(*sentences))):
            n = int(rng.integers(*length))
            doc.append([d * 1_000_000 + s * 1000 + p + 10 for p in range(n)])
        docs.append(doc)
    return docs


def to_ragged(docs):
    flat = [t for doc in docs for sentence in doc for t in sentence]
    return tf.RaggedTensor.from_nested_row_lengths(
        tf.constant(flat, tf.int32, shape=[len(flat)]),
        [[len(doc) for doc in docs], [len(s) for doc in docs for s in doc]])


def pack(docs, seed=(1, 2), seq_length=64, **kwargs):
    fn = tf.function(lambda ragged, seed: pack_documents(
        ragged, seed, seq_length=seq_length, special=SPECIAL, return_details=True, **kwargs))
    out = fn(to_ragged(docs), tf.constant(seed, tf.int64))
    return {k: v.numpy() for k, v in out.items()}


def segments_of(row_ids, row_mask, row_segments):
    """Splits one packed example into (A, B) token lists, checking the layout on the way."""
    n = int(row_mask.sum())
    assert (row_mask[:n] == 1).all() and (row_mask[n:] == 0).all()
    assert (row_ids[n:] == SPECIAL.pad_id).all() and (row_segments[n:] == 0).all()
    assert row_ids[0] == SPECIAL.cls_id and row_ids[n - 1] == SPECIAL.sep_id
    seps = np.flatnonzero(row_ids[:n] == SPECIAL.sep_id)
    assert len(seps) in (1, 2)
    a = row_ids[1:seps[0]].tolist()
    b = row_ids[seps[0] + 1:seps[1]].tolist() if len(seps) == 2 else []
    expected_segments = [0] * (seps[0] + 1) + [1] * (n - seps[0] - 1)
    assert row_segments[:n].tolist() == expected_segments
    return a, b


@pytest.fixture(scope="module")
def packed():
    rng = np.random.default_rng(0)
    docs = make_documents(rng, 300)
    return docs, pack(docs, seq_length=64)


def test_layout_order_and_no_cross_document(packed):
    docs, out = packed
    assert out["input_ids"].shape[1] == 64 and out["input_ids"].dtype == np.int32
    by_doc: dict[int, list] = {}
    for i in range(len(out["input_ids"])):
        a, b = segments_of(out["input_ids"][i], out["input_mask"][i], out["segment_ids"][i])
        assert a, "segment A is never empty"
        assert len(a) <= 62 and len(a) + len(b) <= 61 + (0 if b else 1)
        tokens = a + b
        doc = {t // 1_000_000 for t in tokens}
        assert doc == {out["document"][i]}                     # never crosses documents
        if out["single_segment"][i]:
            assert not b
        by_doc.setdefault(int(out["document"][i]), []).append((a, b))
    for d, examples in by_doc.items():
        sentences = docs[d]
        cursor, truncated = 0, False          # next sentence expected; previous example full?
        for a, b in examples:
            # A starts on a sentence start and continues in order; sentences are only skipped
            # when the previous example was cut at the sequence length (overflow truncated).
            first = (a[0] // 1000) % 1000
            assert a[0] % 1000 == 10 and (first == cursor or (first > cursor and truncated))
            flat = [t for s in sentences[first:] for t in s]
            assert a == flat[:len(a)]
            if b:                              # A is then whole sentences and B follows it
                b_first = (b[0] // 1000) % 1000
                assert b[0] % 1000 == 10 and b_first == (a[-1] // 1000) % 1000 + 1
                assert sentences[b_first - 1][-1] == a[-1]
                flat = [t for s in sentences[b_first:] for t in s]
                assert b == flat[:len(b)]
            last = (b or a)[-1]
            cursor = (last // 1000) % 1000 + 1
            # Cut: full, or B squeezed out entirely (A + [CLS] [SEP] [SEP] fills the length).
            truncated = len(a) + len(b) + 3 >= 64
        assert cursor == len(sentences) or truncated, "every sentence is used"


def test_decisions_proportions():
    rng = np.random.default_rng(1)
    docs = make_documents(rng, 400, sentences=(60, 80), length=(5, 15))
    out = pack(docs, seq_length=64, seed=(5, 6))
    n = len(out["input_ids"])
    assert n > 4000
    short = out["target_length"] < 64
    assert abs(short.mean() - 0.05) < 0.015, short.mean()
    assert out["target_length"].min() >= 5 and out["target_length"].max() <= 64
    assert abs(out["single_segment"].mean() - 0.10) < 0.02, out["single_segment"].mean()
    lengths = out["input_mask"].sum(1)
    # Targets of the full length are always reached except at the end of a document.
    full = ~short & (lengths < 60)
    ends = np.zeros(n, bool)
    seen = set()
    for i in range(n - 1, -1, -1):                       # last example of each document
        if out["document"][i] not in seen:
            ends[i] = True
            seen.add(out["document"][i])
    assert not (full & ~ends).any()
    two = ~out["single_segment"] & ~ends
    has_b = out["segment_ids"].max(1) == 1
    assert has_b[two].mean() > 0.95                     # two segments unless one sentence
    # A aims at (target - 3) // 2 tokens: with sentences of 5-15 tokens it is near 30.
    a_lengths = np.argmax(out["input_ids"] == SPECIAL.sep_id, axis=1) - 1
    assert 20 < np.median(a_lengths[two & ~short]) < 40


def test_overflowing_sentence_joins_a_half_the_time():
    # Sentences of 20 tokens, seq 64: first target (64-3)//2 = 30; the second sentence
    # overflows it and joins A (40 tokens) or goes to B (A = 20 tokens).
    docs = [[[d * 1_000_000 + s * 1000 + p + 10 for p in range(20)] for s in range(4)]
            for d in range(2000)]
    out = pack(docs, seq_length=64, single_segment_prob=0.0, short_seq_prob=0.0)
    a_lengths = np.argmax(out["input_ids"] == SPECIAL.sep_id, axis=1) - 1
    first = np.isin(np.arange(len(a_lengths)), np.unique(out["document"], return_index=True)[1])
    assert set(np.unique(a_lengths[first])) == {20, 40}
    assert abs((a_lengths[first] == 40).mean() - 0.5) < 0.05


def test_long_documents_and_sentences_give_many_examples():
    long_doc = [[[7] * 30 for _ in range(200)]]                    # 6000 tokens, 1 document
    out = pack(long_doc, seq_length=64, short_seq_prob=0.0)
    # 30 + 30 < 64, so each example accumulates 3 sentences (the overflow is truncated).
    assert len(out["input_ids"]) == 67 and set(out["document"]) == {0}
    # Longer than 64 sequences: packed in parts of 64 * 16 tokens, still one document.
    sentences = [[1_000 * s + p + 10 for p in range(20)] for s in range(300)]
    out = pack([sentences], seq_length=16, short_seq_prob=0.0)
    assert set(out["document"]) == {0} and len(out["input_ids"]) > 6000 // 16 / 2
    starts = sorted({int(t) // 1000 for t in out["input_ids"][:, 1]})
    assert starts == sorted(set(starts)) and starts[0] == 0 and starts[-1] > 290
    one_line = [[[9] * 10_000]]                                    # one 10k-token "sentence"
    out = pack(one_line, seq_length=64, short_seq_prob=0.0)
    tokens = int((out["input_ids"] == 9).sum())
    assert len(out["input_ids"]) >= 150 and tokens > 0.9 * 10_000
    assert (out["input_mask"].sum(1) <= 64).all()


def test_deterministic_and_seeded(packed):
    docs, first = packed
    again = pack(docs, seq_length=64)
    other = pack(docs, seq_length=64, seed=(1, 3))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert (first["input_ids"].shape != other["input_ids"].shape
            or (first["input_ids"] != other["input_ids"]).any())


def test_empty_documents_and_sentences_are_skipped():
    docs = [[], [[], [5, 6], []], [[]]]
    out = pack(docs, seq_length=16)
    assert len(out["input_ids"]) == 1
    assert out["input_ids"][0, :4].tolist() == [SPECIAL.cls_id, 5, 6, SPECIAL.sep_id]


def test_graph_mode():
    fn = tf.function(lambda docs, seed: pack_documents(docs, seed, seq_length=16,
                                                        special=SPECIAL))
    spec = tf.RaggedTensorSpec([None, None, None], tf.int32, ragged_rank=2)
    concrete = fn.get_concrete_function(spec, tf.TensorSpec([2], tf.int64))
    assert concrete.structured_outputs["input_ids"].shape.as_list() == [None, 16]
    out = fn(to_ragged([[[5, 6, 7], [8]], [[9] * 40]]), tf.constant([1, 1], tf.int64))
    # Doc 2: 40 tokens > 16 - 3, cut into 5 pieces of 8; two pieces fill an example.
    assert out["input_ids"].shape[0] == 1 + 3


def test_pack_segments():
    a = tf.ragged.constant([[10, 11, 12], [20] * 20, [30] * 3], dtype=tf.int32)
    b = tf.ragged.constant([[40] * 10, [50, 51], [60] * 3], dtype=tf.int32)
    out = {k: v.numpy() for k, v in pack_segments([a, b], 10, SPECIAL).items()}
    assert out["input_ids"].tolist() == [
        [2, 10, 11, 12, 3, 40, 40, 40, 40, 3],     # B (longer) truncated to fit 7 tokens
        [2, 20, 20, 20, 20, 20, 3, 50, 51, 3],     # A truncated, B kept
        [2, 30, 30, 30, 3, 60, 60, 60, 3, 0]]      # fits
    assert out["segment_ids"].tolist()[0] == [0] * 5 + [1] * 5
    assert out["input_mask"].tolist()[2] == [1] * 9 + [0]
    tie = pack_segments([tf.ragged.constant([[1] * 10]), tf.ragged.constant([[2] * 10])], 8,
                        SPECIAL)["input_ids"].numpy()[0].tolist()
    assert tie == [2, 1, 1, 1, 3, 2, 2, 3]         # 5 tokens: A 3, B 2 (B loses ties)
    single = pack_segments([tf.ragged.constant([[5] * 20, []], dtype=tf.int32)], 8, SPECIAL)
    assert single["input_ids"].numpy().tolist() == [[2, 5, 5, 5, 5, 5, 5, 3],
                                                    [2, 3, 0, 0, 0, 0, 0, 0]]
    # A pair whose B is empty packs exactly like the single text, also when A is cut.
    empty_b = pack_segments([tf.ragged.constant([[5] * 20, [7, 8]], dtype=tf.int32),
                             tf.ragged.constant([[], []], dtype=tf.int32)], 8, SPECIAL)
    alone = pack_segments([tf.ragged.constant([[5] * 20, [7, 8]], dtype=tf.int32)], 8, SPECIAL)
    for key in ("input_ids", "input_mask", "segment_ids"):
        assert empty_b[key].numpy().tolist() == alone[key].numpy().tolist(), key
    graph = tf.function(lambda x: pack_segments([x], 8, SPECIAL))
    assert graph(tf.ragged.constant([[5, 6]]))["input_ids"].shape == (1, 8)
