"""The ELECTRA objective: step-0 loss, gradient isolation, labels, XLA, mixed precision, fitting."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from synthetic import synthetic_examples

from electra_tf.config import ObjectiveConfig, TrainConfig, model_preset
from electra_tf.models import build_networks
from electra_tf.objective import electra_objective, scatter_at_positions
from electra_tf.sampling import gumbel_sample
from electra_tf.training.optimizer import create_optimizer

SEQ, N = 32, 5


@pytest.fixture(scope="module")
def batch():
    return {k: tf.constant(v) for k, v in synthetic_examples(8, SEQ, 512, N).items()}


@pytest.fixture(scope="module")
def networks(tiny_model_config):
    keras.utils.set_random_seed(1)
    return build_networks(tiny_model_config)


def test_step0_loss_is_log_vocab_plus_weighted_log2():
    config = model_preset("small")
    keras.utils.set_random_seed(0)
    nets = build_networks(config)
    examples = synthetic_examples(8, 128, config.vocab_size, 19)
    out = electra_objective(nets, {k: tf.constant(v) for k, v in examples.items()},
                            config=ObjectiveConfig(), seed=tf.constant(3), training=False)
    mlm = float(out.ratios["masked_lm_loss"][0] / out.ratios["masked_lm_loss"][1])
    disc = float(out.ratios["disc_loss"][0] / out.ratios["disc_loss"][1])
    assert mlm == pytest.approx(math.log(config.vocab_size), rel=0.03)
    # The final discriminator Dense keeps TF1's Glorot init, so logits start near, not at, 0.
    assert math.log(2) - 0.01 < disc < math.log(2) + 0.25
    expected = math.log(config.vocab_size) + 50 * math.log(2)
    assert float(out.loss) == pytest.approx(expected, rel=0.2)


def test_discriminator_loss_sends_no_gradient_to_the_generator(networks, batch):
    shared = {id(v) for v in networks.embeddings.trainable_variables}
    generator_only = [v for v in networks.generator.trainable_variables if id(v) not in shared]
    with tf.GradientTape() as tape:
        out = electra_objective(networks, batch, config=ObjectiveConfig(), seed=tf.constant(1))
        num, den = out.ratios["disc_loss"]
        disc_loss = num / den
    grads = tape.gradient(disc_loss, generator_only + networks.embeddings.trainable_variables)
    for g in grads[:len(generator_only)]:
        assert g is None or float(tf.reduce_max(tf.abs(g))) == 0.0
    # ...while the shared embeddings do learn from the discriminator.
    assert any(g is not None and float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0
               for g in grads[len(generator_only):])


def test_labels_are_zero_where_the_sample_equals_the_original(networks, batch):
    out = electra_objective(networks, batch, config=ObjectiveConfig(temperature=1.0),
                            seed=tf.constant(5), training=False)
    original = scatter_at_positions(batch["input_ids"], batch["masked_lm_positions"],
                                    batch["masked_lm_ids"], batch["masked_lm_weights"])
    corrupted, labels = out.extras["corrupted_ids"], out.extras["disc_labels"]
    expected = tf.cast(corrupted != original, tf.float32) * tf.cast(batch["input_mask"],
                                                                    tf.float32)
    np.testing.assert_array_equal(labels.numpy(), expected.numpy())
    # Only masked positions may change, and specials never do.
    changed = (corrupted != original).numpy()
    positions = batch["masked_lm_positions"].numpy()
    weights = batch["masked_lm_weights"].numpy()
    for row in range(changed.shape[0]):
        allowed = set(positions[row][weights[row] > 0])
        assert set(np.flatnonzero(changed[row])) <= allowed


def test_sample_equal_to_original_is_not_replaced(networks, batch):
    # Make the generator certain of the right answer: every sample equals the original.
    class Oracle:
        def __init__(self, nets):
            self.nets = nets

        def __getattr__(self, name):
            return getattr(self.nets, name)

        def generator(self, ids, mask, segments, positions, training=None):
            return tf.one_hot(batch["masked_lm_ids"], 512) * 1e4

    out = electra_objective(Oracle(networks), batch, config=ObjectiveConfig(),
                            seed=tf.constant(2), training=False)
    assert float(tf.reduce_sum(out.extras["disc_labels"])) == 0.0
    assert float(out.ratios["sampled_masked_lm_accuracy"][0]) == float(
        tf.reduce_sum(batch["masked_lm_weights"]))


def test_mlm_logits_keep_a_static_vocabulary_dimension(networks, tiny_model_config):
    # Gumbel sampling and the exported fill_mask signature read the vocabulary size statically,
    # also when the batch size is not known (SavedModel signatures).
    hidden = networks.generator.head_dense.kernel.shape[0]

    @tf.function(input_signature=[tf.TensorSpec([None, None, hidden]),
                                  tf.TensorSpec([None, 5], tf.int32)])
    def logits(sequence_output, positions):
        out = networks.generator.mlm_logits(sequence_output, positions)
        assert out.shape.as_list() == [None, 5, tiny_model_config.vocab_size], out.shape
        return out

    out = logits(tf.zeros([2, 7, hidden]), tf.zeros([2, 5], tf.int32))
    assert out.shape == (2, 5, tiny_model_config.vocab_size)


def test_objective_compiles_with_xla(networks, batch):
    step = tf.function(lambda b: electra_objective(networks, b, config=ObjectiveConfig(),
                                                   seed=tf.constant(1)).loss,
                       jit_compile=True)
    assert np.isfinite(float(step(batch)))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_returns_float32(tiny_model_config, batch, policy):
    nets = build_networks(tiny_model_config, dtype=policy)
    assert nets.discriminator.encoder.layers[0].query.compute_dtype != "float32"
    out = electra_objective(nets, batch, config=ObjectiveConfig(), seed=tf.constant(1))
    assert out.loss.dtype == tf.float32
    assert out.extras["disc_probs"].dtype == tf.float32
    assert all(v.dtype == "float32" for v in nets.trainable_variables)
    assert np.isfinite(float(out.loss))


def test_mlm_objective_trains_a_full_size_model_without_discriminator(tiny_model_config,
                                                                      batch):
    nets = build_networks(tiny_model_config, objective="mlm")
    assert nets.discriminator is None
    assert nets.generator.encoder.hidden_size == tiny_model_config.hidden_size
    out = electra_objective(nets, batch, config=ObjectiveConfig(kind="mlm"),
                            seed=tf.constant(1))
    assert set(out.ratios) == {"masked_lm_loss", "masked_lm_accuracy"}
    assert float(out.loss) == pytest.approx(
        float(out.ratios["masked_lm_loss"][0] / out.ratios["masked_lm_loss"][1]), rel=1e-5)


def test_tiny_model_overfits_a_fixed_batch(tiny_model_config, batch):
    keras.utils.set_random_seed(3)
    nets = build_networks(tiny_model_config)
    optimizer = create_optimizer(TrainConfig(learning_rate=2e-3, warmup_steps=10, steps=300),
                                 nets.trainable_variables)
    variables = nets.trainable_variables

    @tf.function(jit_compile=True)
    def step(step_index):
        with tf.GradientTape() as tape:
            loss = electra_objective(nets, batch, config=ObjectiveConfig(),
                                     seed=step_index).loss
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        optimizer.apply(grads, variables)
        return loss

    losses = [float(step(tf.constant(i))) for i in range(200)]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def _ratio(out, name):
    num, den = out.ratios[name]
    return float(num) / float(den)


def test_total_loss_is_mlm_weight_times_mlm_plus_disc_weight_times_disc(networks, batch):
    assert ObjectiveConfig().disc_weight == 50.0 and ObjectiveConfig().mlm_weight == 1.0
    losses = {}
    for mlm_weight, disc_weight in [(1.0, 50.0), (1.0, 7.0), (2.5, 50.0)]:
        config = ObjectiveConfig(mlm_weight=mlm_weight, disc_weight=disc_weight)
        out = electra_objective(networks, batch, config=config, seed=tf.constant(4),
                                training=False)
        mlm, disc = _ratio(out, "masked_lm_loss"), _ratio(out, "disc_loss")
        assert mlm > 1.0 and 0.3 < disc < 1.0          # both terms matter at these weights
        assert float(out.loss) == pytest.approx(mlm_weight * mlm + disc_weight * disc, rel=1e-6)
        losses[mlm_weight, disc_weight] = (float(out.loss), mlm, disc)
    # The default config minimises mlm + 50 * disc (reference objective, step 9).
    default = electra_objective(networks, batch, config=ObjectiveConfig(), seed=tf.constant(4),
                                training=False)
    _, mlm, disc = losses[1.0, 50.0]
    assert float(default.loss) == pytest.approx(mlm + 50.0 * disc, rel=1e-6)
    # Changing disc_weight moves the loss by exactly the change times the disc loss.
    assert losses[1.0, 50.0][0] - losses[1.0, 7.0][0] == pytest.approx(43.0 * disc, rel=1e-5)


def test_objective_samples_at_the_configured_temperature(networks, batch):
    logits = networks.generator(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                                batch["masked_lm_positions"], training=False)
    example_ids = tf.range(tf.shape(batch["input_ids"])[0])
    cold = electra_objective(networks, batch, config=ObjectiveConfig(temperature=0.01),
                             seed=tf.constant(6), training=False).extras["sampled_ids"]
    np.testing.assert_array_equal(
        cold.numpy(), gumbel_sample(logits, tf.constant(6), example_ids, 0.01).numpy())
    warm = gumbel_sample(logits, tf.constant(6), example_ids, 1.0).numpy()
    assert (cold.numpy() != warm).mean() > 0.5


def test_a_prior_disc_bias_moves_every_initial_logit_by_logit_mask_prob(tmp_path, batch):
    from synthetic import tiny_config

    from electra_tf.config import config_from_dict
    from electra_tf.pretraining import PretrainingTask

    logits = {}
    for init in ("zero", "prior"):
        data = tiny_config(tmp_path, SEQ, 512).to_dict()
        data["objective"]["disc_bias_init"] = init
        keras.utils.set_random_seed(3)          # the same weights but for the bias
        disc = PretrainingTask(config_from_dict(data)).build_model("float32").discriminator
        assert float(disc.head_output.bias.numpy()[0]) == pytest.approx(
            0.0 if init == "zero" else math.log(0.15 / 0.85))
        logits[init] = disc(batch["input_ids"], batch["input_mask"], batch["segment_ids"])
    np.testing.assert_allclose(logits["prior"] - logits["zero"], math.log(0.15 / 0.85),
                               atol=1e-5)


def test_presets_keep_the_reference_disc_bias_and_mlm_ignores_a_prior(tmp_path):
    from synthetic import tiny_config

    from electra_tf.config import ConfigError, config_from_dict, load_config
    from electra_tf.pretraining import PretrainingTask

    for name in ("small", "base", "large"):
        assert load_config(f"configs/{name}.yaml").objective.disc_bias_init == "zero"
    # the quickstart with --set objective.kind=mlm (the MLM baseline) still builds
    data = tiny_config(tmp_path, SEQ, 512).to_dict()
    data["objective"].update(kind="mlm", disc_bias_init="prior")
    assert PretrainingTask(config_from_dict(data)).build_model("float32").discriminator is None
    with pytest.raises(ConfigError, match="disc_bias_init must be 'zero'"):
        config_from_dict({"objective": {"disc_bias_init": "half"}})
