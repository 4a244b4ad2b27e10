"""The exported SavedModel: loads in a fresh process with TensorFlow + TensorFlow Text only and
reproduces the in-process networks; plus the HuggingFace format through `export_run`."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import (
    DataConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
    model_preset,
    save_config,
)
from electra_tf.models import build_networks
from electra_tf.training.checkpoints import model_checkpoint

WORDS = ("the a of to and in is was chef cooked ate meal dog cat sat on mat water body large "
         "person who works hospital sleeps man went store sky sun paper . , !").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing"]
SEQ = 16
MAX_PREDICTIONS = 3
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


def perturb(networks, rng, scale):
    for variable in networks.trainable_variables:
        noise = rng.normal(0.0, scale, variable.shape).astype(np.float32)
        variable.assign(variable.numpy() + noise)


def make_run_dir(path, steps_and_scales=((3, 0.05), (7, 0.05))):
    """A run dir with config.yaml, vocab.txt and checkpoints of random networks at the given
    steps. Returns (config, networks in the state of the last step, {step: weight arrays})."""
    os.makedirs(path, exist_ok=True)
    vocab_path = os.path.join(path, "vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    config = RunConfig(
        model=model_preset("tiny", vocab_size=len(VOCAB), dropout=0.0, attention_dropout=0.0),
        objective=ObjectiveConfig(max_predictions=MAX_PREDICTIONS),
        data=DataConfig(vocab_file=vocab_path, seq_length=SEQ, vocab_size=len(VOCAB)),
        train=TrainConfig(run_dir=str(path))).validate()
    save_config(config, os.path.join(path, "config.yaml"))
    networks = build_networks(config.model)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model_checkpoint(networks)),
                                         os.path.join(path, "checkpoints"), max_to_keep=5)
    rng = np.random.default_rng(0)
    weights = {}
    for step, scale in steps_and_scales:
        # Away from the initialisers, so a missing restore cannot go unnoticed.
        perturb(networks, rng, scale)
        manager.save(checkpoint_number=step)
        weights[step] = [v.numpy() for v in networks.trainable_variables]
    return config, networks, weights


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run_dir(str(tmp_path_factory.mktemp("run")))


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    from electra_tf.export import export_run

    config, _, _ = run
    out = str(tmp_path_factory.mktemp("export") / "saved_model")
    assert export_run(config.train.run_dir, out) == out
    return out


@pytest.fixture(scope="module")
def tokenizer(run):
    from electra_tf.data.tokenization import load_tokenizer

    return load_tokenizer(run[0].data)


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
def fresh(exported, tmp_path_factory):
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
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, exported, inputs_path, out_path],
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


def test_loads_with_tensorflow_and_tensorflow_text_only(fresh, run):
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
    _, networks, _ = run
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


def test_single_texts_match_in_process(fresh, run, tokenizer):
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
    assert_matches(got, reference(run[1], ids, mask, types), "serving_default")


def test_pairs_match_in_process(fresh, run, tokenizer):
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
    assert_matches(got, reference(run[1], ids, mask, types), "serving_pair")


def test_encode_matches_networks(fresh, run):
    results, _ = fresh
    got = section(results, "encode")
    want = reference(run[1], ENCODE_IDS, ENCODE_MASK, ENCODE_TYPES)
    assert_matches(got, want, "encode")
    np.testing.assert_array_equal(got["input_mask"], ENCODE_MASK)
    long = section(results, "long")  # dynamic sequence length beyond the run's seq_length
    assert long["sequence_output"].shape == (1, LONG_IDS.shape[1], 128)
    want = reference(run[1], LONG_IDS, np.ones_like(LONG_IDS), np.zeros_like(LONG_IDS))
    assert_matches(long, want, "encode (long)")


def test_fill_mask_matches_generator(fresh, run):
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

    generator = run[1].generator
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


def test_huggingface_format_loads_with_transformers(run, tmp_path):
    import transformers  # the test extra installs it

    from electra_tf.export import export_run
    config, networks, weights = run
    out = export_run(config.train.run_dir, str(tmp_path / "hf"), fmt="huggingface", step=3)
    model = transformers.ElectraForPreTraining.from_pretrained(os.path.join(out,
                                                                            "discriminator"))
    word = model.electra.embeddings.word_embeddings.weight.detach().numpy()
    index = [i for i, v in enumerate(networks.trainable_variables)
             if v is networks.embeddings.word_embeddings][0]
    np.testing.assert_allclose(word, weights[3][index], atol=1e-7)   # the step asked for
    assert max_diff(word, weights[7][index]) > 1e-3
    assert os.path.isfile(os.path.join(out, "generator", "model.safetensors"))
    with open(os.path.join(out, "discriminator", "vocab.txt"), encoding="utf-8") as f:
        assert f.read().split() == VOCAB


BAD_INPUTS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    path, out_path = sys.argv[1:3]
    sigs = tf.saved_model.load(path).signatures
    ids = np.array([[2, 13, 14, 3]], np.int32)
    ones, zeros = np.ones_like(ids), np.zeros_like(ids)
    cases = {
        "text scalar": lambda: sigs["serving_default"](text=tf.constant("the dog")),
        "text 2-D": lambda: sigs["serving_default"](text=tf.constant([["the dog", "a cat"]])),
        "pair scalar": lambda: sigs["serving_pair"](text=tf.constant("a"),
                                                    text_pair=tf.constant("b")),
        "pair 2-D": lambda: sigs["serving_pair"](text=tf.constant([["a", "b"]]),
                                                 text_pair=tf.constant([["c", "d"]])),
        "fill scalar": lambda: sigs["fill_mask"](text=tf.constant("the [MASK]")),
        "fill 2-D": lambda: sigs["fill_mask"](text=tf.constant([["the [MASK]", "a"]])),
        "encode scalar": lambda: sigs["encode"](input_word_ids=tf.constant(2),
                                                input_mask=tf.constant(1),
                                                input_type_ids=tf.constant(0)),
        "encode 1-D": lambda: sigs["encode"](input_word_ids=ids[0], input_mask=ones[0],
                                             input_type_ids=zeros[0]),
        "encode 3-D": lambda: sigs["encode"](input_word_ids=ids[None], input_mask=ones[None],
                                             input_type_ids=zeros[None]),
        "encode id -1": lambda: sigs["encode"](input_word_ids=ids * [[1, -1, 1, 1]],
                                               input_mask=ones, input_type_ids=zeros),
        "encode id >= vocab": lambda: sigs["encode"](input_word_ids=ids + [[0, 1000, 0, 0]],
                                                     input_mask=ones, input_type_ids=zeros),
        "encode type id 2": lambda: sigs["encode"](input_word_ids=ids, input_mask=ones,
                                                   input_type_ids=zeros + 2),
        "encode mask 2": lambda: sigs["encode"](input_word_ids=ids, input_mask=ones * 2,
                                                input_type_ids=zeros),
    }
    results = {}
    for name, call in cases.items():
        try:
            call()
            results[name] = ["accepted", ""]
        except Exception as e:  # noqa: BLE001
            results[name] = [type(e).__name__, str(e)]
    # Still serving after the rejected calls:
    good = sigs["serving_default"](text=tf.constant(["the dog", "a cat"]))
    results["good"] = [str(good["token_ids"].shape), ""]
    json.dump(results, open(out_path, "w"))
""")

SIGNATURE_INPUT = {"text": "serving_default: `text` must be a 1-D string tensor",
                   "pair": "serving_pair: `text` must be a 1-D string tensor",
                   "fill": "fill_mask: `text` must be a 1-D string tensor",
                   "encode": "encode: `input_word_ids` must be a 2-D int32 tensor"}


def test_signatures_reject_other_shapes_and_bad_ids(exported, tmp_path):
    """A scalar or 2-D text, a 1-D or 3-D encode input, out-of-range ids: each signature
    raises InvalidArgumentError naming itself and the input; none crashes (run in a fresh
    process: a crash must not take pytest down) or silently truncates."""
    out_path = str(tmp_path / "bad.json")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", BAD_INPUTS, exported, out_path],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    with open(out_path) as f:
        results = json.load(f)
    assert results.pop("good")[0] == f"(2, {SEQ})"
    expected = {name: SIGNATURE_INPUT[name.split()[0]] for name in results
                if name.split()[1] in ("scalar", "1-D", "2-D", "3-D")}
    expected.update({
        "encode id -1": f"input_word_ids must be token ids in [0, {len(VOCAB)})",
        "encode id >= vocab": f"input_word_ids must be token ids in [0, {len(VOCAB)})",
        "encode type id 2": "input_type_ids must be segment ids in [0, 2)",
        "encode mask 2": "input_mask must be 1 for tokens and 0 for padding",
    })
    assert set(expected) == set(results)
    for name, (error, message) in results.items():
        assert error == "InvalidArgumentError", (name, error, message[:500])
        assert expected[name] in message, (name, message[:500])


def test_saved_model_reexport_replaces_the_earlier_one_in_place(run, exported, tmp_path):
    import shutil

    from electra_tf.export import export_run

    config, _, _ = run
    out = str(tmp_path / "saved_model")
    shutil.copytree(exported, out)
    with open(os.path.join(out, "README.txt"), "w") as f:
        f.write("mine")
    from electra_tf.config import ConfigError
    with pytest.raises(ConfigError, match=r"files it did not write \(README.txt\)"):
        export_run(config.train.run_dir, out, step=3)
    os.remove(os.path.join(out, "README.txt"))
    assert export_run(config.train.run_dir, out, step=3) == out
    assert sorted(os.listdir(tmp_path)) == ["saved_model"], "no temporaries left"
    with open(os.path.join(out, "assets.extra", "electra_tf.json")) as f:
        assert json.load(f)["checkpoint"].endswith("ckpt-3")
    tf.saved_model.load(out)
