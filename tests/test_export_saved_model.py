"""The exported SavedModel: loads in a fresh process with TensorFlow + TensorFlow Text only and
reproduces the in-process networks (bad inputs: test_export_signature_errors.py; the HuggingFace
format: test_export_huggingface.py)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from export_run import MAX_PREDICTIONS, SEQ, VOCAB

ID = {t: i for i, t in enumerate(VOCAB)}
TOL = 1e-5

TEXTS = [
    "The chef ate the meal.",
    "a dog",
    # 20 words: truncated to SEQ - 2.
    "the man went to the store and the dog sat on the mat in the sun , the cat was in water",
    "",
]
PAIRS = [
    ("the chef cooked the meal", "the dog ate"),
    ("a cat sat on the mat", "the man went to the store and the dog sat on the mat in the sun"),
    ("the man went to the store and the dog sat on the mat in the sun", "a cat"),
    ("a dog", ""),   # an empty text_pair packs like a single text
]
FILL = [
    "the chef [MASK] the meal",
    "[MASK] dog [mask] the [MASK] water [MASK] [MASK]",   # more masks than MAX_PREDICTIONS
    "no masks here",
    "the man went to the store and the dog sat on the mat in the sun [MASK]",  # truncated away
]



@pytest.fixture(scope="module")
def tokenizer(random_run):
    from electra_tf.data.tokenization import load_tokenizer

    return load_tokenizer(random_run[0].data)


ENCODE_IDS = np.array([[2, 13, 14, 15, 3, 20, 21, 3, 0, 0, 0, 0],
                       [2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 3]], np.int32)
ENCODE_MASK = (ENCODE_IDS > 0).astype(np.int32)
ENCODE_TYPES = np.array([[0] * 5 + [1] * 7, [0] * 12], np.int32)
LONG_IDS = np.tile(np.arange(5, 25, dtype=np.int32), (1, 3))[:, :40]   # longer than SEQ

FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    path, inputs_path, out_path = sys.argv[1:4]
    inputs = json.load(open(inputs_path))
    before = set(sys.modules)
    model = tf.saved_model.load(path)
    results, info = {}, {}

    def record(prefix, outputs):
        for key, value in outputs.items():
            value = value.numpy()
            if value.dtype == object:
                value = value.astype(str)
            results[f"{prefix}/{key}"] = value

    sigs = model.signatures
    info["signatures"] = {name: {"inputs": sorted(fn.structured_input_signature[1]),
                                 "outputs": sorted(fn.structured_outputs)}
                          for name, fn in sigs.items()}
    record("text", sigs["serving_default"](text=tf.constant(inputs["texts"])))
    record("pair", sigs["serving_pair"](text=tf.constant(inputs["pairs"][0]),
                                        text_pair=tf.constant(inputs["pairs"][1])))
    for name in ("encode", "long"):
        ids, mask, types = (np.array(a, np.int32) for a in inputs[name])
        record(name, sigs["encode"](input_word_ids=ids, input_mask=mask, input_type_ids=types))
    record("fill", sigs["fill_mask"](text=tf.constant(inputs["fill"])))
    info["electra_tf"] = sorted(m for m in sys.modules if m.split(".")[0] == "electra_tf")
    # `import tensorflow` imports Keras itself; loading and running must not need more of it.
    info["new_keras"] = sorted(m for m in set(sys.modules) - before if "keras" in m)
    info["num_variables"] = len(model.model_variables)
    info["num_weights"] = int(sum(int(np.prod(v.shape)) for v in model.model_variables))
    info["seq_length"] = int(model.seq_length.numpy())
    info["vocab_file"] = open(model.vocab_file.asset_path.numpy().decode()).read().split()
    # The outputs must come from the saved variables, not from constants folded into the graph.
    for v in model.model_variables:
        v.assign(v * 0.5)
    ids, mask, types = (np.array(a, np.int32) for a in inputs["encode"])
    record("halved", sigs["encode"](input_word_ids=ids, input_mask=mask, input_type_ids=types))
    np.savez(out_path, **results)
    json.dump(info, open(out_path + ".json", "w"))
""")


@pytest.fixture(scope="module")
def fresh(saved_model_export, tmp_path_factory):
    """The SavedModel's outputs, computed in a new Python process."""
    work = tmp_path_factory.mktemp("fresh")
    inputs = {
        "texts": TEXTS,
        "pairs": [[a for a, _ in PAIRS], [b for _, b in PAIRS]],
        "encode": [ENCODE_IDS.tolist(), ENCODE_MASK.tolist(), ENCODE_TYPES.tolist()],
        "long": [LONG_IDS.tolist(), np.ones_like(LONG_IDS).tolist(),
                 np.zeros_like(LONG_IDS).tolist()],
        "fill": FILL,
    }
    inputs_path, out_path = str(work / "inputs.json"), str(work / "out.npz")
    with open(inputs_path, "w") as f:
        json.dump(inputs, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, saved_model_export,
                           inputs_path, out_path],
                          cwd=str(work), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out_path) as data:
        results = dict(data)
    with open(out_path + ".json") as f:
        info = json.load(f)
    return results, info


def section(results, prefix):
    return {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(prefix + "/")}


def reference(networks, ids, mask, types):
    """The in-process discriminator on packed inputs."""
    disc = networks.discriminator
    seq = disc.encode(tf.constant(ids), tf.constant(mask), tf.constant(types), training=False)
    probs = tf.sigmoid(disc.rtd_logits(seq)) * tf.cast(mask, tf.float32)
    return {"sequence_output": seq.numpy(), "pooled_output": seq[:, 0].numpy(),
            "replaced_probability": probs.numpy()}


def packed_in_process(tokenizer, *texts):
    from electra_tf.data.packing import pack_segments

    segments = [tokenizer.tokenize(tf.constant(list(t))) for t in texts]
    packed = pack_segments(segments, SEQ, tokenizer.special)
    return tuple(np.asarray(packed[k], np.int32)
                 for k in ("input_ids", "input_mask", "segment_ids"))


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def assert_matches(got, want, what):
    for key, value in want.items():
        assert got[key].shape == value.shape, (what, key, got[key].shape, value.shape)
        diff = max_diff(got[key], value)
        print(f"{what} {key}: max diff {diff:.2e}")
        assert diff <= TOL, (what, key, diff)


def test_loads_with_tensorflow_and_tensorflow_text_only(fresh, random_run):
    results, info = fresh
    assert info["electra_tf"] == [], info["electra_tf"]
    assert info["new_keras"] == [], info["new_keras"]
    assert info["signatures"] == {
        "serving_default": {"inputs": ["text"], "outputs": [
            "input_mask", "pooled_output", "replaced_probability", "segment_ids",
            "sequence_output", "token_ids"]},
        "serving_pair": {"inputs": ["text", "text_pair"], "outputs": [
            "input_mask", "pooled_output", "replaced_probability", "segment_ids",
            "sequence_output", "token_ids"]},
        "encode": {"inputs": ["input_mask", "input_type_ids", "input_word_ids"], "outputs": [
            "input_mask", "pooled_output", "replaced_probability", "sequence_output"]},
        "fill_mask": {"inputs": ["text"], "outputs": [
            "input_mask", "mask_positions", "num_masks", "token_ids", "top_k_ids",
            "top_k_probabilities", "top_k_tokens"]},
    }
    _, networks, _ = random_run
    weights = {id(v.value): v for n in (networks.generator, networks.discriminator)
               for v in n.weights}
    assert info["num_variables"] == len(weights)
    assert info["num_weights"] == sum(int(np.prod(v.shape)) for v in weights.values())
    assert info["seq_length"] == SEQ
    assert info["vocab_file"] == VOCAB


def test_variables_are_saved_not_folded(fresh):
    results, _ = fresh
    encode, halved = section(results, "encode"), section(results, "halved")
    assert max_diff(encode["sequence_output"], halved["sequence_output"]) > 1e-2


def test_single_texts_match_in_process(fresh, random_run, tokenizer):
    results, _ = fresh
    got = section(results, "text")
    ids, mask, types = packed_in_process(tokenizer, TEXTS)
    # The packing itself, independently of pack_segments:
    expected = [ID[t] for t in "[CLS] the chef ate the meal . [SEP]".split()]
    np.testing.assert_array_equal(got["token_ids"][0], expected + [0] * (SEQ - len(expected)))
    assert got["token_ids"][1, :4].tolist() == [ID["[CLS]"], ID["a"], ID["dog"], ID["[SEP]"]]
    assert got["input_mask"][2].sum() == SEQ, "the long text fills the sequence (truncated)"
    assert got["token_ids"][2, -1] == ID["[SEP]"]
    assert got["token_ids"][2, 1:4].tolist() == [ID["the"], ID["man"], ID["went"]]
    assert got["token_ids"][3, :2].tolist() == [ID["[CLS]"], ID["[SEP]"]]
    assert not got["segment_ids"].any()
    assert np.all(got["replaced_probability"][got["input_mask"] == 0] == 0)
    assert np.all((got["replaced_probability"] > 0)[got["input_mask"] == 1])
    assert got["sequence_output"].shape == (len(TEXTS), SEQ, 128)

    np.testing.assert_array_equal(got["token_ids"], ids)
    np.testing.assert_array_equal(got["input_mask"], mask)
    np.testing.assert_array_equal(got["segment_ids"], types)
    assert_matches(got, reference(random_run[1], ids, mask, types), "serving_default")


def test_pairs_match_in_process(fresh, random_run, tokenizer):
    results, _ = fresh
    got = section(results, "pair")
    ids, mask, types = packed_in_process(tokenizer, *zip(*PAIRS, strict=True))
    a = [ID[t] for t in "[CLS] the chef cooked the meal [SEP]".split()]
    b = [ID[t] for t in "the dog ate [SEP]".split()]
    np.testing.assert_array_equal(got["token_ids"][0, :len(a + b)], a + b)
    np.testing.assert_array_equal(got["segment_ids"][0, :len(a + b)], [0] * len(a) + [1] * len(b))
    for row in (1, 2):  # truncated pairs: both segments present, two [SEP]s, full length
        assert got["input_mask"][row].sum() == SEQ
        assert (got["token_ids"][row] == ID["[SEP]"]).sum() == 2
        assert got["segment_ids"][row].any() and got["segment_ids"][row, -1] == 1

    single = section(results, "text")
    for key in ("token_ids", "input_mask", "segment_ids"):
        np.testing.assert_array_equal(got[key][3], single[key][1])
    np.testing.assert_allclose(got["replaced_probability"][3],
                               single["replaced_probability"][1], atol=TOL)

    np.testing.assert_array_equal(got["token_ids"], ids)
    np.testing.assert_array_equal(got["segment_ids"], types)
    assert_matches(got, reference(random_run[1], ids, mask, types), "serving_pair")


def test_encode_matches_networks(fresh, random_run):
    results, _ = fresh
    got = section(results, "encode")
    want = reference(random_run[1], ENCODE_IDS, ENCODE_MASK, ENCODE_TYPES)
    assert_matches(got, want, "encode")
    np.testing.assert_array_equal(got["input_mask"], ENCODE_MASK)
    long = section(results, "long")  # dynamic sequence length beyond the run's seq_length
    assert long["sequence_output"].shape == (1, LONG_IDS.shape[1], 128)
    want = reference(random_run[1], LONG_IDS, np.ones_like(LONG_IDS), np.zeros_like(LONG_IDS))
    assert_matches(long, want, "encode (long)")


def test_fill_mask_matches_generator(fresh, random_run):
    results, _ = fresh
    got = section(results, "fill")
    k = 5
    assert got["top_k_tokens"].shape == (len(FILL), MAX_PREDICTIONS, k)
    assert got["top_k_probabilities"].shape == (len(FILL), MAX_PREDICTIONS, k)
    assert got["num_masks"].tolist() == [1, MAX_PREDICTIONS, 0, 0]
    expected = [ID[t] for t in "[CLS] the chef [MASK] the meal [SEP]".split()]
    np.testing.assert_array_equal(got["token_ids"][0, :len(expected)], expected)
    assert got["mask_positions"][0].tolist() == [3, 0, 0]
    assert got["mask_positions"][1].tolist() == [1, 3, 5]   # the first three masks
    assert got["input_mask"][3].sum() == SEQ and ID["[MASK]"] not in got["token_ids"][3]

    probs = got["top_k_probabilities"]
    assert np.all((probs >= 0) & (probs <= 1))
    assert np.all(probs.sum(-1) <= 1 + 1e-6)
    assert np.all(np.diff(probs, axis=-1) <= 0), "sorted, most likely first"
    used = np.arange(MAX_PREDICTIONS)[None, :] < got["num_masks"][:, None]
    assert np.all(probs[used][:, 0] > 0)
    assert np.all(probs[~used] == 0) and np.all(got["top_k_tokens"][~used] == "")

    generator = random_run[1].generator
    ids, mask = got["token_ids"], got["input_mask"]
    seq = generator.encode(tf.constant(ids), tf.constant(mask), tf.zeros_like(ids),
                           training=False)
    logits = generator.mlm_logits(seq, tf.constant(got["mask_positions"])).numpy()
    want = tf.nn.softmax(logits, axis=-1).numpy()
    top_ids = np.argsort(-want, axis=-1)[..., :k]
    assert np.array_equal(got["top_k_ids"][used][:, 0], logits.argmax(-1)[used])
    assert got["top_k_tokens"][used][:, 0].tolist() == [VOCAB[i] for i in
                                                        logits.argmax(-1)[used]]
    np.testing.assert_array_equal(got["top_k_ids"][used], top_ids[used])
    diff = max_diff(probs[used], np.take_along_axis(want, top_ids, -1)[used])
    print(f"fill_mask top_k_probabilities: max diff {diff:.2e}")
    assert diff <= TOL
