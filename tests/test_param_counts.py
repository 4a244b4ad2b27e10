"""Parameter counts equal HF transformers' ELECTRA models of the same sizes; embeddings shared."""

import numpy as np
import pytest
import torch  # the test extra installs it: when missing, these tests fail, never skip
import transformers

from electra_tf.config import model_preset
from electra_tf.interop import tf1_variables
from electra_tf.models import build_networks


def _hf_count(cls, **sizes) -> int:
    """Parameters of an HF model, tied weights once; built on the meta device (no memory)."""
    with torch.device("meta"):
        model = cls(transformers.ElectraConfig(**sizes))
    return sum(p.numel() for p in model.parameters())


def _hf_sizes(config, role):
    hidden, heads, ffn = config.hidden_size, config.num_heads, config.intermediate_size
    if role == "generator":
        hidden, heads = config.generator_hidden_size, config.generator_num_heads
        ffn = config.generator_intermediate_size
    return dict(vocab_size=config.vocab_size, embedding_size=config.embedding_size,
                hidden_size=hidden, num_hidden_layers=config.num_layers,
                num_attention_heads=heads, intermediate_size=ffn,
                max_position_embeddings=config.max_position_embeddings,
                type_vocab_size=config.type_vocab_size)


def _unique_count(variables) -> int:
    unique = {id(v): v for v in variables}
    return int(sum(np.prod(v.shape) for v in unique.values()))


@pytest.fixture(scope="module", params=["small", "base"])
def preset_networks(request):
    config = model_preset(request.param)
    return request.param, config, build_networks(config)


# Pinned totals (discriminator: the paper's 14M Small and 110M Base; generators at 1/4 and 1/3).
EXPECTED = {"small": (13_549_057, 4_620_026), "base": (109_483_009, 33_740_602)}


def test_counts_match_huggingface(preset_networks):
    name, config, networks = preset_networks
    disc, gen = networks.discriminator, networks.generator
    hf_disc = _hf_count(transformers.ElectraForPreTraining, **_hf_sizes(config, "discriminator"))
    hf_gen = _hf_count(transformers.ElectraForMaskedLM, **_hf_sizes(config, "generator"))
    assert disc.count_params() == _unique_count(disc.trainable_variables) == hf_disc
    assert gen.count_params() == _unique_count(gen.trainable_variables) == hf_gen
    assert (hf_disc, hf_gen) == EXPECTED[name]
    # Together: the embeddings are counted once.
    embedding = _unique_count(networks.embeddings.trainable_variables)
    assert _unique_count(networks.trainable_variables) == hf_disc + hf_gen - embedding


def test_embeddings_are_shared_objects(preset_networks):
    _, _, networks = preset_networks
    disc, gen = networks.discriminator, networks.generator
    assert disc.embeddings is gen.embeddings is networks.embeddings
    shared = networks.embeddings.trainable_variables
    assert len(shared) == 5  # three tables, LayerNorm gamma and beta
    for variable in shared:
        assert any(v is variable for v in disc.trainable_variables)
        assert any(v is variable for v in gen.trainable_variables)
    # Nothing else is shared between the two networks.
    common = {id(v) for v in disc.trainable_variables} & {id(v) for v in gen.trainable_variables}
    assert common == {id(v) for v in shared}


def test_every_variable_named_exactly_once(preset_networks):
    _, _, networks = preset_networks
    named = list(tf1_variables(networks).values())
    assert len({id(v) for v in named}) == len(named)
    assert {id(v) for v in named} == {id(v) for v in networks.trainable_variables}


def test_keras_variable_paths_are_unique(preset_networks):
    # TensorBoard, debuggers and weight-decay exclusion see variables by their Keras path.
    _, _, networks = preset_networks
    paths = [v.path for v in networks.trainable_variables]
    assert len(set(paths)) == len(paths)
    assert "generator/layer_0/query/kernel" in paths
    assert "discriminator/layer_0/query/kernel" in paths
    assert "generator/output_bias" in paths


def test_mlm_objective_counts():
    config = model_preset("small")
    networks = build_networks(config, objective="mlm")
    assert networks.discriminator is None
    sizes = _hf_sizes(config, "discriminator")  # full size
    assert networks.generator.count_params() == _hf_count(transformers.ElectraForMaskedLM, **sizes)
    named = tf1_variables(networks)
    assert {id(v) for v in named.values()} == {id(v) for v in networks.trainable_variables}
    assert "electra/encoder/layer_11/output/LayerNorm/beta" in named
    assert not any(n.startswith(("generator/", "discriminator_predictions/")) for n in named)
