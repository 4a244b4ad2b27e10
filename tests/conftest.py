"""Shared test set-up: quiet TensorFlow logs, deterministic ops, small shared fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices so MirroredStrategy tests can run on one machine. This must happen
# before anything touches the devices, hence here, at import time of the test session.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialised by an earlier import
    pass


@pytest.fixture(scope="session")
def tiny_model_config():
    from electra_tf.config import model_preset

    return model_preset("tiny", vocab_size=512, dropout=0.0, attention_dropout=0.0)


@pytest.fixture(scope="session")
def random_run(tmp_path_factory):
    """A run dir of random tiny networks with checkpoints at steps 3 and 7 (export_run.py):
    (config, networks at step 7, {step: weight arrays}). Read-only for the tests."""
    from export_run import make_run_dir

    return make_run_dir(str(tmp_path_factory.mktemp("random_run")))


@pytest.fixture(scope="session")
def saved_model_export(random_run, tmp_path_factory):
    """`random_run` exported as a SavedModel (its latest step)."""
    from electra_tf.export import export_run

    out = str(tmp_path_factory.mktemp("export") / "saved_model")
    assert export_run(random_run[0].train.run_dir, out) == out
    return out
