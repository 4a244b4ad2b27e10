"""Google's TF1 checkpoint names: write, load (strictly or partially), read sizes from shapes."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import ModelConfig, model_preset
from electra_tf.interop import (
    CheckpointMismatchError,
    load_pretrained,
    load_tf1_checkpoint,
    model_config_from_pretrained,
    model_config_from_tf1_checkpoint,
    tf1_variables,
    write_tf1_checkpoint,
)
from electra_tf.models import build_networks

MISSING = "electra/encoder/layer_1/attention/self/key/bias"
MISSHAPED = "generator_predictions/output_bias"


def save_arrays(prefix: str, arrays: dict) -> None:
    """A checkpoint with exactly these names, as TF1's Saver writes them."""
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.convert_to_tensor(arrays[n]) for n in names])


def weights(networks) -> dict:
    return {name: v.numpy() for name, v in tf1_variables(networks).items()}


def batch(config, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, config.vocab_size, size=(2, 10)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[0, 7:] = 0
    segments = np.zeros_like(ids)
    segments[:, 4:] = 1
    return ids, mask, segments, np.array([[1, 2, 5], [0, 3, 9]], np.int32)


def outputs(networks, config):
    ids, mask, segments, positions = batch(config)
    out = [networks.generator(ids, mask, segments, positions, training=False).numpy()]
    if networks.discriminator is not None:
        out.append(networks.discriminator(ids, mask, segments, training=False).numpy())
    return out


@pytest.fixture(scope="module")
def source(tiny_model_config, tmp_path_factory):
    """A random model (non-trivial LayerNorms and biases) and its TF1 checkpoint."""
    networks = build_networks(tiny_model_config)
    rng = np.random.default_rng(0)
    for variable in tf1_variables(networks).values():
        variable.assign(variable.numpy() + 0.1 * rng.standard_normal(variable.shape))
    prefix = str(tmp_path_factory.mktemp("tf1") / "model.ckpt-100")
    write_tf1_checkpoint(networks, prefix)
    return networks, prefix


def test_written_names_are_exactly_the_tf1_names(source):
    networks, prefix = source
    listed = dict(tf.train.list_variables(prefix))
    assert set(listed) == set(tf1_variables(networks))
    for name in ("electra/embeddings/word_embeddings", "electra/embeddings/LayerNorm/gamma",
                 "electra/embeddings_project/kernel",
                 "electra/encoder/layer_0/attention/self/query/kernel",
                 "electra/encoder/layer_1/attention/output/LayerNorm/beta",
                 "electra/encoder/layer_1/intermediate/dense/kernel",
                 "discriminator_predictions/dense/kernel", "discriminator_predictions/dense_1/bias",
                 "generator/encoder/layer_1/output/dense/kernel",
                 "generator_predictions/dense/kernel", "generator_predictions/LayerNorm/gamma",
                 "generator_predictions/output_bias"):
        assert name in listed, name
    assert listed["discriminator_predictions/dense_1/kernel"] == [128, 1]
    assert listed["generator_predictions/dense/kernel"] == [64, 64]
    assert listed["electra/embeddings/word_embeddings"] == [512, 64]
    # tiny: generator hidden 64 == E, so the generator has no projection.
    assert not any(n.startswith("generator/embeddings_project") for n in listed)


def test_roundtrip_reproduces_outputs_exactly(source, tiny_model_config):
    networks, prefix = source
    fresh = build_networks(tiny_model_config)
    assert not all(np.array_equal(a, b) for a, b in zip(
        outputs(fresh, tiny_model_config), outputs(networks, tiny_model_config), strict=True))
    summary = load_tf1_checkpoint(fresh, prefix)
    assert not summary.skipped and not summary.unused
    for name, value in weights(networks).items():
        assert np.array_equal(weights(fresh)[name], value), name
    for a, b in zip(outputs(fresh, tiny_model_config), outputs(networks, tiny_model_config),
                    strict=True):
        assert np.array_equal(a, b)


def test_dispatcher_and_directory_path(source, tiny_model_config):
    networks, prefix = source
    fresh = build_networks(tiny_model_config)
    load_pretrained(fresh, os.path.dirname(prefix))  # the directory, via its 'checkpoint' file
    assert np.array_equal(weights(fresh)[MISSING], weights(networks)[MISSING])


def test_optimizer_slots_and_global_step_are_ignored(source, tiny_model_config, tmp_path):
    networks, _ = source
    arrays = weights(networks)
    arrays["global_step"] = np.int64(1000)
    arrays[f"{MISSING}/adam_m"] = np.zeros(128, np.float32)
    arrays["electra/encoder/layer_0/output/dense/kernel/adam_v"] = np.zeros((512, 128), np.float32)
    save_arrays(str(tmp_path / "ckpt"), arrays)
    fresh = build_networks(tiny_model_config)
    summary = load_tf1_checkpoint(fresh, str(tmp_path / "ckpt"))
    assert len(summary.unused) == 3 and not summary.skipped
    assert np.array_equal(weights(fresh)[MISSING], arrays[MISSING])


@pytest.fixture
def broken(source, tmp_path):
    """Checkpoints with one variable missing, one misshaped, and both."""
    networks, _ = source
    good = weights(networks)
    missing = {k: v for k, v in good.items() if k != MISSING}
    misshaped = {**good, MISSHAPED: np.zeros(500, np.float32)}
    both = {**missing, MISSHAPED: np.zeros(500, np.float32)}
    paths = {}
    for name, arrays in (("missing", missing), ("misshaped", misshaped), ("both", both)):
        paths[name] = str(tmp_path / name / "model.ckpt")
        save_arrays(paths[name], arrays)
    return good, paths


def test_missing_variable_fails_and_names_it(broken, tiny_model_config):
    _, paths = broken
    fresh = build_networks(tiny_model_config)
    before = weights(fresh)
    with pytest.raises(CheckpointMismatchError) as error:
        load_tf1_checkpoint(fresh, paths["missing"])
    message = str(error.value)
    assert MISSING in message and "missing" in message and "(128,)" in message
    assert "allow_partial" in message and MISSHAPED not in message
    assert isinstance(error.value, ValueError)
    for name, value in weights(fresh).items():  # nothing was loaded
        assert np.array_equal(value, before[name])


def test_misshaped_variable_fails_and_names_it(broken, tiny_model_config):
    _, paths = broken
    with pytest.raises(CheckpointMismatchError) as error:
        load_tf1_checkpoint(build_networks(tiny_model_config), paths["misshaped"])
    message = str(error.value)
    assert MISSHAPED in message and "(500,)" in message and "(512,)" in message
    assert MISSING not in message


def test_errors_list_every_name(broken, tiny_model_config):
    _, paths = broken
    with pytest.raises(CheckpointMismatchError) as error:
        load_tf1_checkpoint(build_networks(tiny_model_config), paths["both"])
    assert MISSING in str(error.value) and MISSHAPED in str(error.value)


def test_allow_partial_loads_the_rest_and_logs(broken, tiny_model_config, caplog):
    good, paths = broken
    fresh = build_networks(tiny_model_config)
    before = weights(fresh)
    with caplog.at_level(logging.WARNING, logger="electra_tf.interop"):
        summary = load_pretrained(fresh, paths["both"], allow_partial=True)
    assert sorted(summary.skipped) == sorted([MISSING, MISSHAPED])
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(MISSING in m for m in warned) and any(MISSHAPED in m for m in warned)
    after = weights(fresh)
    for name, value in after.items():
        expected = before[name] if name in summary.skipped else good[name]
        assert np.array_equal(value, expected), name


def test_sizes_read_from_shapes(source, tiny_model_config):
    _, prefix = source
    base = model_preset("small")
    config = model_config_from_tf1_checkpoint(prefix, base)
    for field in ("vocab_size", "embedding_size", "hidden_size", "num_layers",
                  "intermediate_size", "generator_fraction", "max_position_embeddings",
                  "type_vocab_size"):
        assert getattr(config, field) == getattr(tiny_model_config, field), field
    assert config.num_heads == base.num_heads == 4  # not visible in shapes: kept from base
    assert config.generator_hidden_size == 64 and config.generator_num_heads == 1
    assert config.dropout == base.dropout
    assert model_config_from_pretrained(prefix, base) == config


def test_one_to_one_generator_warns(tmp_path, caplog):
    # Like Google's released Small++: generator as large as the discriminator.
    config = ModelConfig(vocab_size=100, embedding_size=32, hidden_size=64, num_layers=1,
                         num_heads=2, intermediate_size=128, generator_fraction=1.0,
                         max_position_embeddings=64)
    prefix = str(tmp_path / "model.ckpt")
    write_tf1_checkpoint(build_networks(config), prefix)
    with caplog.at_level(logging.WARNING, logger="electra_tf.interop"):
        read = model_config_from_tf1_checkpoint(prefix, model_preset("small"))
    assert read.generator_fraction == 1.0 and read.generator_hidden_size == 64
    assert read.generator_num_heads == 1 and read.max_position_embeddings == 64
    assert "collapse" in caplog.text
    assert "generator/embeddings_project/kernel" in dict(tf.train.list_variables(prefix))


def test_mlm_objective_roundtrip(tiny_model_config, tmp_path):
    networks = build_networks(tiny_model_config, objective="mlm")
    prefix = str(tmp_path / "model.ckpt")
    write_tf1_checkpoint(networks, prefix)
    names = dict(tf.train.list_variables(prefix))
    assert "electra/encoder/layer_0/attention/self/query/kernel" in names
    assert "generator_predictions/output_bias" in names
    assert not any(n.startswith(("generator/", "discriminator_predictions/")) for n in names)
    fresh = build_networks(tiny_model_config, objective="mlm")
    load_tf1_checkpoint(fresh, prefix)
    assert all(np.array_equal(a, b) for a, b in
               zip(outputs(fresh, tiny_model_config), outputs(networks, tiny_model_config),
                   strict=True))


def test_not_a_checkpoint(tiny_model_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="no TF checkpoint"):
        load_pretrained(build_networks(tiny_model_config), str(tmp_path / "nothing"))


def test_loads_into_mirrored_mixed_precision_networks(source, tiny_model_config):
    """The trainer builds the networks under a strategy (two logical CPUs in tests), possibly
    with a mixed policy: variables stay float32 and every replica receives the weights."""
    networks, prefix = source
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        fresh = build_networks(tiny_model_config, dtype="mixed_bfloat16")
    load_pretrained(fresh, prefix)
    variable = tf1_variables(fresh)[MISSING]
    expected = weights(networks)[MISSING]
    replicas = strategy.experimental_local_results(variable.value)
    assert len(replicas) == 2
    for replica in replicas:
        assert np.array_equal(replica.numpy(), expected)
