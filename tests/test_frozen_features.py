"""The probe arithmetic of benchmarks/frozen_features.py (no model: milliseconds)."""

import importlib.util
import os

import numpy as np

# Loaded by path: putting benchmarks/ on sys.path would let benchmarks/pipelines.py shadow the
# pipelines package for the test modules collected after this one.
_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "frozen_features.py")
_spec = importlib.util.spec_from_file_location("frozen_features", _PATH)
frozen_features = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(frozen_features)
mean_cosine, ridge_accuracy = frozen_features.mean_cosine, frozen_features.ridge_accuracy


def test_the_probe_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 800)
    centres = rng.normal(size=(4, 16)) * 3
    x = centres[labels] + rng.normal(size=(800, 16))
    assert ridge_accuracy(x[:600], labels[:600], x[600:], labels[600:], 4) > 0.95
    noise = rng.normal(size=(800, 16))
    assert ridge_accuracy(noise[:600], labels[:600], noise[600:], labels[600:], 4) < 0.4


def test_mean_cosine_is_one_for_a_shared_direction_and_near_zero_for_noise():
    rng = np.random.default_rng(1)
    shared = np.ones((50, 8)) * rng.uniform(1, 2, (50, 1))
    assert abs(mean_cosine(shared) - 1.0) < 1e-6
    assert abs(mean_cosine(rng.normal(size=(400, 64)))) < 0.05
