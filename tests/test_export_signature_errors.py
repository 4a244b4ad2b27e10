"""The exported signatures reject inputs of other shapes and out-of-range ids with an error
naming the signature and the input, and keep serving afterwards."""

import json
import os
import subprocess
import sys
import textwrap

from export_run import SEQ, VOCAB

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


def test_signatures_reject_other_shapes_and_bad_ids(saved_model_export, tmp_path):
    """A scalar or 2-D text, a 1-D or 3-D encode input, out-of-range ids: each signature
    raises InvalidArgumentError naming itself and the input; none crashes (run in a fresh
    process: a crash must not take pytest down) or silently truncates."""
    out_path = str(tmp_path / "bad.json")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", BAD_INPUTS, saved_model_export, out_path],
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
