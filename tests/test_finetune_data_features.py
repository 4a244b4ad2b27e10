"""make_features: pair packing and truncation, padded evaluation batches, tagging positions."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.data import DataError
from electra_tf.data.tokenization import WordPieceTokenizer
from electra_tf.finetune.features import make_features, truncate_pair_lengths, truncated_words
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.sources import data_errors, examples_from_lists

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a",
         "dog", "##s", "run", ".", "not", "good", "new", "york"]
ID = {t: i for i, t in enumerate(VOCAB)}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return WordPieceTokenizer(str(path))


def _with_ids(dataset):
    return dataset.enumerate().map(lambda i, e: {**e, "example_id": i})


def _classification(texts_a, texts_b, labels, kind="classification"):
    return _with_ids(examples_from_lists({"text_a": texts_a, "text_b": texts_b,
                                          "label": labels}, kind))


def _batches(dataset, n=None):
    return [{k: v.numpy() for k, v in b.items()} for b in (dataset.take(n) if n else dataset)]


def _bert_truncation(len_a, len_b, budget):
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_truncation_closed_form_equals_berts_pop_loop():
    a, b, m = np.meshgrid(np.arange(0, 14), np.arange(0, 14), np.arange(1, 12), indexing="ij")
    a, b, m = a.ravel(), b.ravel(), m.ravel()
    got_a, got_b = truncate_pair_lengths(tf.constant(a), tf.constant(b), tf.constant(m))
    expected = [_bert_truncation(*x) for x in zip(a, b, m, strict=True)]
    assert list(zip(got_a.numpy(), got_b.numpy(), strict=True)) == expected


def test_pair_packing_segments_and_static_shapes(tokenizer):
    examples = _classification(["the cat sat on the mat", "dogs"], ["a dog", ""], ["y", "x"])
    (batch,) = _batches(make_features(examples, tokenizer, LabelSet(("x", "y")),
                                      kind="classification", seq_length=8, batch_size=2,
                                      training=False, seed=0))
    c, s = ID["[CLS]"], ID["[SEP]"]
    # 6 + 2 tokens for a budget of 5: "a dog" keeps 2, the first text keeps 3.
    assert batch["input_ids"].tolist() == [
        [c, ID["the"], ID["cat"], ID["sat"], s, ID["a"], ID["dog"], s],
        [c, ID["dog"], ID["##s"], s, 0, 0, 0, 0]]
    assert batch["segment_ids"].tolist() == [[0, 0, 0, 0, 0, 1, 1, 1], [0] * 8]
    assert batch["input_mask"].tolist() == [[1] * 8, [1] * 4 + [0] * 4]
    assert batch["label"].tolist() == [1, 0]
    assert batch["input_ids"].dtype == np.int32 and batch["example_id"].dtype == np.int64


def test_evaluation_pads_the_last_batch_and_covers_every_example(tokenizer):
    examples = _classification(["the cat"] * 7, [""] * 7, [0.5 * i for i in range(7)],
                               "regression")
    dataset = make_features(examples, tokenizer, None, kind="regression", seq_length=8,
                            batch_size=3, training=False, seed=0)
    assert dataset.element_spec["input_ids"].shape == (3, 8)
    batches = _batches(dataset)
    assert len(batches) == 3
    ids = np.concatenate([b["example_id"] for b in batches])
    weights = np.concatenate([b["example_weight"] for b in batches])
    assert ids.tolist() == [0, 1, 2, 3, 4, 5, 6, -1, -1]
    assert weights.tolist() == [1] * 7 + [0, 0]
    assert batches[0]["label"].dtype == np.float32
    assert np.concatenate([b["label"] for b in batches])[:7].tolist() == [
        0.5 * i for i in range(7)]


def test_training_shuffles_deterministically_repeats_and_drops_the_remainder(tokenizer):
    examples = _classification(["the cat"] * 10, [""] * 10, ["x"] * 10)

    def ids(seed):
        dataset = make_features(examples, tokenizer, LabelSet(("x",)), kind="classification",
                                seq_length=8, batch_size=4, training=True, seed=seed)
        return np.concatenate([b["example_id"] for b in _batches(dataset, 5)]).tolist()

    first = ids(1)
    assert first == ids(1) and first != ids(2)
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:20]) == list(range(10))
    assert first[:10] != first[10:20]                     # a new order every epoch


def test_unknown_label_fails_with_a_data_error(tokenizer):
    examples = _classification(["the cat", "a dog"], ["", ""], ["x", "zzz"])
    dataset = make_features(examples, tokenizer, LabelSet(("x", "y")), kind="classification",
                            seq_length=8, batch_size=2, training=False, seed=0)
    message = r"^label\(s\) that the training split never had: zzz$"
    with pytest.raises(DataError, match=message), data_errors():
        _batches(dataset)


def _tagging(words, tags):
    return _with_ids(examples_from_lists({"words": words, "tags": tags}, "tagging"))


def test_tagging_labels_first_sub_tokens_only(tokenizer):
    labels = LabelSet(("O", "B-LOC", "I-LOC", "B-X"), "tagging")
    examples = _tagging([["new", "york", "dogs", "run"], ["", "cats", "sat", "on", "the", "mat"]],
                        [["B-LOC", "I-LOC", "O", "B-X"], ["O", "B-X", "O", "O", "O", "B-X"]])
    (batch,) = _batches(make_features(examples, tokenizer, labels, kind="tagging", seq_length=8,
                                      batch_size=3, training=False, seed=0))
    c, s, unk = ID["[CLS]"], ID["[SEP]"], ID["[UNK]"]
    assert batch["input_ids"][0].tolist() == [c, ID["new"], ID["york"], ID["dog"], ID["##s"],
                                              ID["run"], s, 0]
    assert batch["label_ids"][0].tolist() == [0, 1, 2, 0, 0, 3, 0, 0]
    assert batch["label_weights"][0].tolist() == [0, 1, 1, 1, 0, 1, 0, 0]
    assert batch["word_index"][0].tolist() == [-1, 0, 1, 2, -1, 3, -1, -1]
    # The empty word gets [UNK]; "mat" falls beyond seq_length - 2 tokens.
    assert batch["input_ids"][1].tolist() == [c, unk, ID["cat"], ID["##s"], ID["sat"], ID["on"],
                                              ID["the"], s]
    assert batch["word_index"][1].tolist() == [-1, 0, 1, -1, 2, 3, 4, -1]
    assert batch["num_words"].tolist() == [4, 6, 0]
    assert batch["label_weights"][2].sum() == 0 and batch["example_weight"].tolist() == [1, 1, 0]
    assert batch["input_mask"][0].tolist() == [1] * 7 + [0]
    assert truncated_words(batch) == 1


def test_tagging_unknown_tag_and_prediction_without_labels(tokenizer):
    examples = _tagging([["the", "cat"]], [["O", "B-ZZ"]])
    dataset = make_features(examples, tokenizer, LabelSet(("O",), "tagging"), kind="tagging",
                            seq_length=8, batch_size=1, training=False, seed=0)
    with pytest.raises(DataError, match="tag.*B-ZZ"), data_errors():
        _batches(dataset)
    (batch,) = _batches(make_features(examples, tokenizer, None, kind="tagging", seq_length=8,
                                      batch_size=1, training=False, seed=0))
    assert batch["label_ids"].sum() == 0 and batch["label_weights"][0].tolist()[:3] == [0, 1, 1]


def _reference_pair(tokenizer, text_a, text_b, seq_length):
    """BERT's packing written out token by token."""
    a = tokenizer.tokenize(tf.constant([text_a])).numpy()[0].tolist()
    b = tokenizer.tokenize(tf.constant([text_b])).numpy()[0].tolist()
    budget = seq_length - (3 if b else 2)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    ids = [ID["[CLS]"]] + a + [ID["[SEP]"]] + (b + [ID["[SEP]"]] if b else [])
    segments = [0] * (len(a) + 2) + [1] * (len(ids) - len(a) - 2)
    pad = seq_length - len(ids)
    return ids + [0] * pad, segments + [0] * pad


def _reference_tagging(tokenizer, words, seq_length):
    ids, first, index = [ID["[CLS]"]], [0], [-1]
    for number, word in enumerate(words):
        pieces = tokenizer.tokenize(tf.constant([word])).numpy()[0].tolist() or [ID["[UNK]"]]
        for k, piece in enumerate(pieces):
            ids.append(piece)
            first.append(int(k == 0))
            index.append(number if k == 0 else -1)
    ids, first, index = ids[:seq_length - 1], first[:seq_length - 1], index[:seq_length - 1]
    ids.append(ID["[SEP]"])
    first.append(0)
    index.append(-1)
    pad = seq_length - len(ids)
    return ids + [0] * pad, first + [0] * pad, index + [-1] * pad


def test_random_batches_match_a_token_by_token_reference(tokenizer):
    rng = np.random.default_rng(0)
    words = ["the", "cats", "sat", "on", "mat", "dogs", "run", "new", "york", "zebra", "."]

    def text(n):
        return " ".join(rng.choice(words, n))

    texts_a = [text(int(rng.integers(0, 9))) for _ in range(12)]
    texts_b = [text(int(rng.integers(0, 9))) if i % 3 else "" for i in range(12)]
    examples = _classification(texts_a, texts_b, ["x"] * 12)
    for seq_length in (8, 11):
        batches = _batches(make_features(examples, tokenizer, LabelSet(("x",)),
                                         kind="classification", seq_length=seq_length,
                                         batch_size=5, training=False, seed=0))
        got_ids = np.concatenate([b["input_ids"] for b in batches])[:12]
        got_segments = np.concatenate([b["segment_ids"] for b in batches])[:12]
        for i in range(12):
            ids, segments = _reference_pair(tokenizer, texts_a[i], texts_b[i], seq_length)
            assert got_ids[i].tolist() == ids, (texts_a[i], texts_b[i])
            assert got_segments[i].tolist() == segments

    sentences = [list(rng.choice(words + [""], int(rng.integers(0, 9)))) for _ in range(9)]
    tagged = _tagging(sentences, [["O"] * len(s) for s in sentences])
    batches = _batches(make_features(tagged, tokenizer, LabelSet(("O",), "tagging"),
                                     kind="tagging", seq_length=9, batch_size=4, training=False,
                                     seed=0))
    merged = {k: np.concatenate([b[k] for b in batches])[:9] for k in batches[0]}
    for i, sentence in enumerate(sentences):
        ids, first, index = _reference_tagging(tokenizer, sentence, 9)
        assert merged["input_ids"][i].tolist() == ids, sentence
        assert merged["label_weights"][i].tolist() == first
        assert merged["word_index"][i].tolist() == index
        assert merged["input_mask"][i].tolist() == [int(t != 0) for t in ids]


def test_sentencepiece_tokenizer_pairs_and_tagging(tmp_path):
    import io
    import random

    import sentencepiece as spm  # the test extra installs it

    from electra_tf.data.tokenization import SentencePieceTokenizer

    rng = random.Random(0)
    words = "alpha bravo charlie delta echo foxtrot golf hotel".split()
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(" ".join(rng.choice(words) for _ in range(8))
                               for _ in range(300)),
        model_writer=model, vocab_size=30, hard_vocab_limit=False, num_threads=1,
        minloglevel=2, control_symbols=["[CLS]", "[SEP]", "[MASK]"], pad_id=0, unk_id=1,
        bos_id=-1, eos_id=-1)
    (tmp_path / "sp.model").write_bytes(model.getvalue())
    sp = SentencePieceTokenizer(str(tmp_path / "sp.model"))
    special = sp.special
    pairs = _classification(["alpha bravo"], ["charlie"], ["x"])
    (batch,) = _batches(make_features(pairs, sp, LabelSet(("x",)), kind="classification",
                                      seq_length=12, batch_size=1, training=False, seed=0))
    a = sp.tokenize(tf.constant(["alpha bravo"])).flat_values.numpy().tolist()
    b = sp.tokenize(tf.constant(["charlie"])).flat_values.numpy().tolist()
    expected = [special.cls_id] + a + [special.sep_id] + b + [special.sep_id]
    assert batch["input_ids"][0].tolist() == expected + [special.pad_id] * (12 - len(expected))
    tagged = _tagging([["alpha", "bravo", "golf"]], [["B-X", "O", "B-X"]])
    (batch,) = _batches(make_features(tagged, sp, LabelSet(("O", "B-X"), "tagging"),
                                      kind="tagging", seq_length=12, batch_size=1,
                                      training=False, seed=0))
    firsts = np.flatnonzero(batch["label_weights"][0])
    assert batch["word_index"][0][firsts].tolist() == [0, 1, 2]
    assert batch["label_ids"][0][firsts].tolist() == [1, 0, 1]
    first_piece = sp.tokenize(tf.constant(["golf"])).numpy()[0][0]
    assert batch["input_ids"][0][firsts[2]] == first_piece
