"""The fine-tuning network: shapes, names, padding invariance, float32 logits, warm start."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.finetune.model import build_model, model_checkpoint
from electra_tf.models.names import tf1_to_hf


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


# ---------------------------------------------------------------------------------------------
# Warm start: the encoder from a pretraining run, an HF directory, a TF1 checkpoint
# ---------------------------------------------------------------------------------------------


def _pretrained(config, objective="electra"):
    from electra_tf.models import build_networks

    networks = build_networks(config, objective)
    for i, variable in enumerate(networks.trainable_variables):
        variable.assign(variable.numpy() + 0.01 * (i % 7 + 1))
    return networks


def _same_encoder(model, network):
    ids, mask, segments = batch()
    ours = model.encode(ids, mask, segments, training=False).numpy()
    theirs = network.encode(ids, mask, segments, training=False).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("objective", ["electra", "mlm"])
def test_warm_start_from_a_pretraining_run(tiny_model_config, tmp_path, objective):
    from electra_tf.config import RunConfig, save_config
    from electra_tf.finetune.init import init_kind, init_model_config, init_vocab, load_encoder
    from electra_tf.training.checkpoints import model_checkpoint as run_checkpoint

    networks = _pretrained(tiny_model_config, objective)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "vocab.txt").write_text("x\n")
    config = RunConfig(model=tiny_model_config)
    config.objective.kind = objective
    config.train.run_dir = str(run)
    config.data.vocab_file = str(run / "vocab.txt")
    save_config(config, str(run / "config.yaml"))
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=run_checkpoint(networks)), str(run / "checkpoints"), 1)
    manager.save(checkpoint_number=7)
    assert init_kind(str(run)) == "pretraining_run"
    assert init_kind(str(run / "checkpoints" / "ckpt-7")) == "pretraining_run"
    from electra_tf.interop import export_huggingface, write_tf1_checkpoint

    export_huggingface(networks, tiny_model_config, str(run / "hf"), None)
    write_tf1_checkpoint(networks, str(run / "tf1" / "model.ckpt-7"))
    assert init_kind(str(run / "hf")) == "huggingface"  # inside a run dir, still HF
    assert init_kind(str(run / "tf1" / "model.ckpt-7")) == "tf1"
    assert init_model_config(str(run), tiny_model_config) == tiny_model_config
    assert init_vocab(str(run)) == str(run / "vocab.txt")
    model = build_model(tiny_model_config, "classification", 2)
    load_encoder(model, str(run))
    _same_encoder(model, networks.encoder_network)


def test_warm_start_from_huggingface_and_tf1(tiny_model_config, tmp_path):
    from electra_tf.finetune.init import init_kind, init_model_config, load_encoder
    from electra_tf.interop import export_huggingface, write_tf1_checkpoint

    networks = _pretrained(tiny_model_config)
    export_huggingface(networks, tiny_model_config, str(tmp_path / "hf"), None)
    write_tf1_checkpoint(networks, str(tmp_path / "tf1" / "model.ckpt-10"))
    for path, kind in ((tmp_path / "hf", "huggingface"),
                       (tmp_path / "hf" / "discriminator", "huggingface"),
                       (tmp_path / "tf1" / "model.ckpt-10", "tf1")):
        assert init_kind(str(path)) == kind
        sizes = init_model_config(str(path), tiny_model_config)
        assert (sizes.hidden_size, sizes.num_layers) == (128, 2)
        model = build_model(tiny_model_config, "tagging", 3)
        load_encoder(model, str(path))
        _same_encoder(model, networks.discriminator)


def test_word_norm_rescales_the_loaded_word_rows_and_keeps_their_directions(
        tiny_model_config, tmp_path):
    from electra_tf.finetune.init import load_encoder
    from electra_tf.interop import export_huggingface

    networks = _pretrained(tiny_model_config)
    export_huggingface(networks, tiny_model_config, str(tmp_path / "hf"), None)
    model = build_model(tiny_model_config, "classification", 2)
    source = load_encoder(model, str(tmp_path / "hf"), word_norm=0.16)
    assert "rescaled to norm 0.16" in source
    rows = model.embeddings.word_embeddings.numpy()
    theirs = networks.discriminator.embeddings.word_embeddings.numpy()
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 0.16, rtol=1e-5)
    cosines = np.sum(rows * theirs, axis=1) / (np.linalg.norm(theirs, axis=1) * 0.16)
    np.testing.assert_allclose(cosines, 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.embeddings.position_embeddings.numpy(),
                                  networks.discriminator.embeddings.position_embeddings.numpy())


def test_warm_start_errors(tiny_model_config, tmp_path):
    import dataclasses

    from electra_tf.errors import UserError
    from electra_tf.finetune.init import init_kind, load_encoder
    from electra_tf.interop import write_tf1_checkpoint

    with pytest.raises(UserError, match="does not exist"):
        init_kind(str(tmp_path / "nowhere"))
    write_tf1_checkpoint(_pretrained(tiny_model_config), str(tmp_path / "model.ckpt-1"))
    wider = dataclasses.replace(tiny_model_config, intermediate_size=256)
    with pytest.raises(UserError, match="does not match"):
        load_encoder(build_model(wider, "classification", 2), str(tmp_path / "model.ckpt-1"))
