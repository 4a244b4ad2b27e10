"""The plateau sweep's `genlr=X` patch (benchmarks/plateau_patches.py): which variables get
the generator's learning-rate multiplier."""

import importlib.util
import os

from electra_tf import pretraining
from electra_tf.models import build_networks

# Loaded by path, like the other benchmark tests (benchmarks/ is not a package).
_spec = importlib.util.spec_from_file_location("plateau_patches", os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "benchmarks", "plateau_patches.py"))
patches = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(patches)


def test_genlr_scales_only_the_generators_own_variables(tiny_model_config, monkeypatch):
    # Registers the library's method with monkeypatch, so the patch is undone after the test.
    monkeypatch.setattr(pretraining.PretrainingTask, "learning_rate_multipliers",
                        pretraining.PretrainingTask.learning_rate_multipliers)
    patches.apply_patch("genlr=3")
    networks = build_networks(tiny_model_config)
    factors = pretraining.PretrainingTask.learning_rate_multipliers(None, networks)

    by_path = dict(zip((v.path for v in networks.trainable_variables), factors, strict=True))
    shared = {v.path for v in networks.embeddings.trainable_variables}
    disc = {v.path for v in networks.discriminator.trainable_variables}
    own = {v.path for v in networks.generator.trainable_variables} - shared
    assert shared and own and disc - shared
    assert {by_path[p] for p in own} == {3.0}
    assert {by_path[p] for p in shared | disc} == {1.0}
    assert any("output_bias" in p for p in own)        # the generator's softmax bias
    assert len(factors) == len(networks.trainable_variables)
