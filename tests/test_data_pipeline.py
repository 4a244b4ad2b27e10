"""make_dataset / dataset_fn end to end: shapes, masking in the pipeline, sharding, bad input."""

import gzip
import random

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from electra_tf.config import RunConfig
from electra_tf.data import FEATURES, DataError, WordPieceTokenizer, dataset_fn, make_dataset

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "si", "tu") for b in
         ("bar", "den", "fix", "gul", "hom", "jex", "kip", "lum")]           # 64 words
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SEQ = 32


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    letters = "abcdefghijklmnopqrstuvwxyz"
    path.write_text("\n".join(SPECIALS + WORDS + ["."] + list(letters)
                              + ["##" + c for c in letters]) + "\n")
    return WordPieceTokenizer(str(path))


def write_corpus(directory, files=1, docs=20, seed=0):
    """Sentence-per-line files; document i of file f uses only word WORDS[(f * docs + i) % 64]."""
    rng = random.Random(seed)
    for f in range(files):
        lines = []
        for i in range(docs):
            word = WORDS[(f * docs + i) % len(WORDS)]
            for _ in range(rng.randint(2, 12)):
                lines.append(" ".join([word] * rng.randint(3, 15)) + ".")
            lines.append("")
        (directory / f"part-{f}.txt").write_text("\n".join(lines))
    return [str(directory / "*.txt")]


def config(paths=None, **data):
    cfg = RunConfig()
    cfg.model.vocab_size = 200
    cfg.data.seq_length = SEQ
    if paths is not None:
        cfg.data.source, cfg.data.paths = "text", paths
        cfg.data.eval_documents = 0
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return cfg.validate()


def batches(dataset, count):
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(count)]


def originals(batch):
    """Undoes the masking: the packed example before masking."""
    ids = batch["input_ids"].copy()
    for row in range(len(ids)):
        used = batch["masked_lm_weights"][row] > 0
        ids[row, batch["masked_lm_positions"][row, used]] = batch["masked_lm_ids"][row, used]
    return ids


def test_by_default_the_same_config_gives_the_same_batches(tmp_path, tokenizer):
    cfg = config(write_corpus(tmp_path, files=4), shuffle_buffer=64)
    first = make_dataset(cfg, tokenizer, batch_size=8)
    assert first.options().deterministic is True
    second = batches(make_dataset(cfg, tokenizer, batch_size=8), 6)
    for a, b in zip(batches(first, 6), second, strict=True):
        for key in FEATURES:
            np.testing.assert_array_equal(a[key], b[key])


def test_shapes_and_masking_consistency(tmp_path, tokenizer):
    cfg = config(write_corpus(tmp_path))
    dataset = make_dataset(cfg, tokenizer, batch_size=8)
    n = cfg.max_predictions
    assert n == int((0.15 + 0.005) * SEQ)
    spec = dataset.element_spec
    assert set(spec) == set(FEATURES)
    for name in FEATURES:
        width = SEQ if name in ("input_ids", "input_mask", "segment_ids") else n
        assert spec[name].shape.as_list() == [8, width]
        assert spec[name].dtype == (tf.float32 if name == "masked_lm_weights" else tf.int32)
    for batch in batches(dataset, 30):                  # several epochs of this small corpus
        ids = originals(batch)
        assert (ids[:, 0] == 2).all()
        real = batch["input_mask"].sum(1)
        count = np.maximum(1, np.minimum(n, np.round(real.astype(np.float32) *
                                                     np.float32(0.15)).astype(int)))
        np.testing.assert_array_equal(batch["masked_lm_weights"].sum(1), count)
        changed = batch["input_ids"] != ids
        assert (batch["input_ids"][changed] == 4).all()  # only [MASK] replaces tokens
        assert not np.isin(batch["masked_lm_ids"][batch["masked_lm_weights"] > 0],
                           [0, 2, 3, 4]).any()
        assert (batch["segment_ids"] <= batch["input_mask"]).all()


def test_fresh_masks_every_epoch_and_seeded(tmp_path, tokenizer):
    (tmp_path / "one.txt").write_text(" ".join(WORDS[:20]) + "\n")  # one example per epoch
    cfg = config([str(tmp_path / "one.txt")], single_segment_prob=1.0, short_seq_prob=0.0)
    first = batches(make_dataset(cfg, tokenizer, split="train", batch_size=4), 5)
    stacked = np.concatenate([originals(b) for b in first])
    assert (stacked == stacked[0]).all()                 # the same example, epoch after epoch
    masks = {tuple(sorted(b["masked_lm_positions"][r])) for b in first for r in range(4)}
    assert len(masks) >= 15                              # ... with fresh masks (20 epochs)
    again = batches(make_dataset(cfg, tokenizer, split="train", batch_size=4), 5)
    for a, b in zip(first, again, strict=True):
        for key in FEATURES:
            np.testing.assert_array_equal(a[key], b[key])
    cfg.data.seed = 1
    other = batches(make_dataset(cfg, tokenizer, split="train", batch_size=4), 1)
    assert (other[0]["masked_lm_positions"] != first[0]["masked_lm_positions"]).any()


def test_sharding_across_input_contexts(tmp_path, tokenizer):
    (tmp_path / "many").mkdir()
    (tmp_path / "one").mkdir()
    for paths in (write_corpus(tmp_path / "many", files=4, docs=16),   # shard by file
                  write_corpus(tmp_path / "one", files=1, docs=64)):   # by document
        cfg = config(paths)
        seen = []
        for pipeline in range(2):
            context = tf.distribute.InputContext(num_input_pipelines=2,
                                                 input_pipeline_id=pipeline)
            words = set()
            for batch in batches(make_dataset(cfg, tokenizer, batch_size=2,
                                              input_context=context, repeat=False), -1):
                words |= set(originals(batch).ravel().tolist())
            seen.append(words - {0, 2, 3, 4, tokenizer.tokenize(["."])[0, 0].numpy()})
        assert seen[0] and seen[1] and not seen[0] & seen[1]
        assert len(seen[0] | seen[1]) >= 60               # (almost) every document is read


def test_dataset_fn_with_mirrored_strategy(tmp_path, tokenizer):
    cfg = config(write_corpus(tmp_path))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dataset = strategy.distribute_datasets_from_function(
        dataset_fn(cfg, tokenizer, global_batch_size=8))
    batch = next(iter(dataset))
    parts = strategy.experimental_local_results(batch["input_ids"])
    assert len(parts) == 2 and all(p.shape == (4, SEQ) for p in parts)


def test_default_corpus_end_to_end(tokenizer):
    cfg = config(eval_documents=20)
    train = batches(make_dataset(cfg, tokenizer, batch_size=16), 2)
    assert train[1]["input_ids"].shape == (16, SEQ)
    held_out = batches(make_dataset(cfg, tokenizer, split="eval", batch_size=16,
                                    repeat=False), -1)
    assert len(held_out) > 5                            # 20 documents of ~500 tokens
    assert batches(make_dataset(cfg, tokenizer, split="eval", batch_size=16,
                                repeat=False), 1)[0]["input_ids"].tolist() == \
        held_out[0]["input_ids"].tolist()               # evaluation is reproducible


def test_a_ten_megabyte_line(tmp_path, tokenizer):
    rng = random.Random(1)
    line = " ".join(rng.choice(WORDS) for _ in range(10_000_000 // 5))
    assert len(line) > 10_000_000
    (tmp_path / "big.txt").write_text("A short document.\n\n" + line + "\n")
    dataset = make_dataset(config([str(tmp_path / "big.txt")]), tokenizer, batch_size=256,
                           repeat=False)
    total = examples = 0
    for batch in dataset:
        examples += batch["input_ids"].shape[0]
        total += int(tf.reduce_sum(batch["input_mask"]))
    words = len(line.split())
    assert examples > words // SEQ and total > 0.8 * words   # the text is split, not cut


@pytest.mark.parametrize("content, match", [
    (b"\n\n   \n\n", "no text to train on"),
    (b"\x00\x00\n\x00\n", "no text to train on"),
    (b"", "the corpus is empty"),
])
def test_corpus_without_text(tmp_path, tokenizer, content, match):
    (tmp_path / "c.txt").write_bytes(content)
    with pytest.raises(DataError, match=match):
        make_dataset(config([str(tmp_path / "c.txt")]), tokenizer, batch_size=4)


def test_gzip_corpus_end_to_end(tmp_path, tokenizer):
    write_corpus(tmp_path)
    text = (tmp_path / "part-0.txt").read_bytes()
    (tmp_path / "part-0.txt").unlink()
    (tmp_path / "part-0.txt.gz").write_bytes(gzip.compress(text))
    batch = batches(make_dataset(config([str(tmp_path)]), tokenizer, batch_size=4), 1)[0]
    ids = originals(batch)[batch["input_mask"] == 1]
    assert (ids != tokenizer.special.unk_id).all()            # read as text, not gzip bytes
    (tmp_path / "part-0.txt.gz").write_bytes(text)                # not gzip after all
    with pytest.raises(DataError) as error:
        make_dataset(config([str(tmp_path)]), tokenizer, batch_size=4)
    assert str(error.value).startswith("cannot read text corpus") and "inflate" in str(error.value)
    assert "{{" not in str(error.value) and "[Op:" not in str(error.value)


def test_other_bad_inputs(tmp_path, tokenizer):
    with pytest.raises(DataError, match="does not exist"):
        make_dataset(config([str(tmp_path / "missing.txt")]), tokenizer, batch_size=4)
    (tmp_path / "small.txt").write_text("kabar kabar.\n")
    with pytest.raises(DataError, match="fewer than one batch"):
        make_dataset(config([str(tmp_path / "small.txt")]), tokenizer, batch_size=4,
                     repeat=False)
    big_vocab = config([str(tmp_path / "small.txt")])
    big_vocab.model.vocab_size = 10
    with pytest.raises(DataError, match="model.vocab_size"):
        make_dataset(big_vocab, tokenizer, batch_size=4)
    cfg = config(source="tfds", tfds_name="surely_not_a_dataset")
    with pytest.raises(DataError, match="not a TensorFlow Datasets dataset"):
        make_dataset(cfg, tokenizer, batch_size=4)


def test_tfds_pipeline(tokenizer):
    def as_dataset_fn(builder, split, decoders=None, read_config=None, **kwargs):
        texts = [" ".join(WORDS[i:i + 9]) + ". " + " ".join(WORDS[i + 9:i + 20]) + "."
                 for i in range(40)]
        return tf.data.Dataset.from_tensor_slices({"text": texts, "title": ["t"] * 40})

    cfg = config(source="tfds", tfds_name="wikipedia/20230601.en", eval_documents=5)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn):
        batch = batches(make_dataset(cfg, tokenizer, batch_size=4), 1)[0]
    assert batch["input_ids"].shape == (4, SEQ) and (batch["input_mask"].sum(1) > 5).all()


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_objective_mask_token_fraction_reaches_the_pipeline(tmp_path, tokenizer, fraction):
    cfg = config(write_corpus(tmp_path))
    cfg.objective.mask_token_fraction = fraction
    cfg.validate()
    masked = total = 0
    for batch in batches(make_dataset(cfg, tokenizer, batch_size=16), 4):
        used = batch["masked_lm_weights"] > 0
        rows = np.nonzero(used)[0]
        at_positions = batch["input_ids"][rows, batch["masked_lm_positions"][used]]
        masked += int((at_positions == tokenizer.special.mask_id).sum())
        total += int(used.sum())
        # [MASK] appears nowhere else; with fraction 0 the input is the unmasked example.
        assert int((batch["input_ids"] == tokenizer.special.mask_id).sum()) == \
            int((at_positions == tokenizer.special.mask_id).sum())
        if fraction == 0.0:
            np.testing.assert_array_equal(batch["input_ids"], originals(batch))
    assert total > 100
    assert masked == round(fraction * total)
