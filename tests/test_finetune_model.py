"""The fine-tuning network: shapes, names, padding invariance, float32 logits, warm start."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.finetune.model import build_model, model_checkpoint
from electra_tf.interop.names import tf1_to_hf


def batch(vocab=512, b=3, length=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(b, length)).astype(np.int32)
    mask = np.zeros((b, length), np.int32)
    for i, real in enumerate([12, 8, 4][:b]):
        mask[i, :real] = 1
    ids[mask == 0] = 0
    return ids, mask, np.zeros_like(ids)


@pytest.mark.parametrize("kind,shape", [("classification", (3, 4)), ("regression", (3, 1)),
                                        ("tagging", (3, 12, 4))])
def test_logit_shapes(tiny_model_config, kind, shape):
    outputs = 1 if kind == "regression" else 4
    model = build_model(tiny_model_config, kind, outputs)
    logits = model(*batch(), training=False)
    assert tuple(logits.shape) == shape and logits.dtype == tf.float32


def test_every_trainable_variable_has_a_stable_hf_name(tiny_model_config):
    for kind in ("classification", "tagging"):
        model = build_model(tiny_model_config, kind, 3)
        names = model.model_variables()
        assert {id(v) for v in names.values()} == {id(v) for v in model.trainable_variables}
        hf = {tf1_to_hf(n)[0] for n in names}
        assert len(hf) == len(names)
        if kind == "classification":
            assert {"classifier.dense.weight", "classifier.out_proj.bias"} <= hf
        else:
            assert {"classifier.weight", "classifier.bias"} <= hf
        assert "electra.encoder.layer.1.output.LayerNorm.weight" in hf


def test_padding_does_not_change_real_outputs(tiny_model_config):
    model = build_model(tiny_model_config, "tagging", 3)
    ids, mask, segments = batch()
    longer = [np.pad(x, ((0, 0), (0, 4))) for x in (ids, mask, segments)]
    short = model(ids, mask, segments, training=False).numpy()
    padded = model(*longer, training=False).numpy()[:, :12]
    real = mask.astype(bool)
    np.testing.assert_allclose(short[real], padded[real], atol=1e-5)


def test_mixed_precision_logits_are_float32(tiny_model_config):
    model = build_model(tiny_model_config, "classification", 2, precision="mixed_bfloat16")
    assert model(*batch(), training=False).dtype == tf.float32


def test_checkpoint_round_trip(tiny_model_config, tmp_path):
    model = build_model(tiny_model_config, "classification", 2)
    ids, mask, segments = batch()
    expected = model(ids, mask, segments, training=False).numpy()
    path = model_checkpoint(model).save(str(tmp_path / "ckpt"))
    other = build_model(tiny_model_config, "classification", 2)
    model_checkpoint(other).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(other(ids, mask, segments, training=False).numpy(), expected)


def test_dropout_is_active_only_in_training(tiny_model_config):
    import dataclasses

    config = dataclasses.replace(tiny_model_config, dropout=0.3)
    model = build_model(config, "classification", 2)
    args = batch()
    a, b = model(*args, training=False), model(*args, training=False)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(model(*args, training=True).numpy(), a.numpy())
