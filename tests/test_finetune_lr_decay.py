"""Layer-wise learning-rate decay: the factor of every variable of a 12- and a 24-layer model,
by the formula (head 1, layer i decay^(L - i), embeddings decay^(L + 1)) and with the authors'
off-by-one (one more factor of decay for every encoder variable)."""

import re

import pytest

from electra_tf.config import ModelConfig
from electra_tf.finetune.layerwise import layerwise_multipliers
from electra_tf.finetune.model import build_model


def narrow(layers: int) -> ModelConfig:
    """Real depths at a width that builds in a second (E != H: embeddings_project exists)."""
    return ModelConfig(vocab_size=64, embedding_size=16, hidden_size=32, num_layers=layers,
                       num_heads=2, intermediate_size=64, max_position_embeddings=32)


def expected_factor(path: str, layers: int, decay: float, off_by_one: bool) -> float:
    """The formula, written from the variable's Keras path (not from our name table)."""
    extra = 1 if off_by_one else 0
    match = re.search(r"layer_(\d+)/", path)
    if match:
        return decay ** (layers - int(match.group(1)) + extra)
    if "embeddings" in path:  # word/position/token type tables, their LayerNorm, the project
        return decay ** (layers + 1 + extra)
    assert "classifier" in path, path
    return 1.0


@pytest.mark.parametrize("layers,decay", [(12, 0.8), (24, 0.9)])
@pytest.mark.parametrize("off_by_one", [False, True])
@pytest.mark.parametrize("kind", ["classification", "tagging"])
def test_every_variable_gets_decay_to_the_depth(layers, decay, off_by_one, kind):
    model = build_model(narrow(layers), kind, 3)
    factors = layerwise_multipliers(model, decay, off_by_one)
    variables = model.trainable_variables
    assert len(factors) == len(variables) == 16 * layers + 7 + (4 if kind != "tagging" else 2)
    for variable, factor in zip(variables, factors, strict=True):
        want = expected_factor(variable.path, layers, decay, off_by_one)
        assert factor == pytest.approx(want, rel=1e-12), variable.path


def test_reference_figures_for_base():
    """The figures the reference quotes for L = 12, decay 0.8 with the off-by-one: embeddings
    x0.044, layer 0 x0.055, layer 11 x0.64, head x1."""
    model = build_model(narrow(12), "classification", 2)
    by_path = dict(zip((v.path for v in model.trainable_variables),
                       layerwise_multipliers(model, 0.8, off_by_one=True), strict=True))
    pick = lambda pattern: {round(f, 3) for p, f in by_path.items() if re.search(pattern, p)}
    assert pick(r"word_embeddings") == {0.044}
    assert pick(r"layer_0/") == {0.055}
    assert pick(r"layer_11/") == {0.64}
    assert pick(r"classifier") == {1.0}
    formula = dict(zip((v.path for v in model.trainable_variables),
                       layerwise_multipliers(model, 0.8), strict=True))
    assert {round(f, 3) for p, f in formula.items() if "layer_11/" in p} == {0.8}


def test_decay_one_is_no_decay():
    model = build_model(narrow(2), "regression", 1)
    assert set(layerwise_multipliers(model, 1.0)) == {1.0}
