"""Numerical parity with HuggingFace transformers (PyTorch) ELECTRA: weights copied from a random
HF discriminator + generator pair give the same hidden states and head logits (<= 1e-4)."""

import numpy as np
import pytest
import torch  # the test extra installs it: when missing, these tests fail, never skip
import transformers

from electra_tf.config import ModelConfig
from electra_tf.interop import load_huggingface
from electra_tf.models import build_networks

TOLERANCE = 1e-4

# E != H (the discriminator projects, the generator at H/2 == E does not) and E == H (the
# discriminator does not project, the generator at H/4 does).
CONFIGS = {
    "projected": ModelConfig(vocab_size=1000, embedding_size=64, hidden_size=128, num_layers=2,
                             num_heads=4, intermediate_size=256, generator_fraction=0.5),
    "unprojected": ModelConfig(vocab_size=1000, embedding_size=128, hidden_size=128,
                               num_layers=2, num_heads=2, intermediate_size=384,
                               generator_fraction=0.25),
}


def hf_config(config: ModelConfig, generator: bool, full_size_generator: bool = False):
    hidden, heads, ffn = config.hidden_size, config.num_heads, config.intermediate_size
    if generator and not full_size_generator:
        hidden, heads = config.generator_hidden_size, config.generator_num_heads
        ffn = config.generator_intermediate_size
    return transformers.ElectraConfig(
        vocab_size=config.vocab_size, embedding_size=config.embedding_size, hidden_size=hidden,
        num_hidden_layers=config.num_layers, num_attention_heads=heads, intermediate_size=ffn,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size, layer_norm_eps=config.layer_norm_epsilon,
        attn_implementation="eager")


def perturb(*models, seed=0):
    """Random init leaves LayerNorms at 1/0 and biases at 0: make every parameter distinct so a
    swapped or missed tensor cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    seen = set()
    with torch.no_grad():
        for model in models:
            for p in model.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    p.add_(0.1 * torch.randn(p.shape, generator=generator))


def make_batch(config: ModelConfig, seed=0):
    """Batch of 3, length 16, padded to lengths 16/11/6, two segments, 4 masked positions."""
    rng = np.random.default_rng(seed)
    batch, length = 3, 16
    ids = rng.integers(5, config.vocab_size, size=(batch, length)).astype(np.int32)
    mask = np.zeros((batch, length), np.int32)
    segments = np.zeros((batch, length), np.int32)
    for b, (real, split) in enumerate([(16, 7), (11, 4), (6, 3)]):
        mask[b, :real] = 1
        segments[b, split:real] = 1
        ids[b, real:] = 0
    positions = np.array([[1, 5, 9, 15], [0, 3, 7, 10], [1, 2, 4, 5]], np.int32)
    return ids, mask, segments, positions


def hf_forward(model, ids, mask, segments):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long),
                    token_type_ids=torch.tensor(segments, dtype=torch.long),
                    output_hidden_states=True)
    return out.logits.numpy(), out.hidden_states[-1].numpy()


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, tmp_path_factory):
    """A random HF pair sharing embeddings, saved as our export layout, and ours loaded from it."""
    config = CONFIGS[request.param]
    torch.manual_seed(0)
    disc = transformers.ElectraForPreTraining(hf_config(config, generator=False)).eval()
    gen = transformers.ElectraForMaskedLM(hf_config(config, generator=True)).eval()
    disc.electra.embeddings = gen.electra.embeddings  # tied as in the reference
    perturb(disc, gen)
    root = tmp_path_factory.mktemp(f"hf_pair_{request.param}")
    disc.save_pretrained(root / "discriminator")
    gen.save_pretrained(root / "generator")
    networks = build_networks(config)
    load_huggingface(networks, str(root))
    return config, disc, gen, networks


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def test_discriminator_parity(pair):
    config, disc, _, networks = pair
    ids, mask, segments, _ = make_batch(config)
    hf_logits, hf_hidden = hf_forward(disc, ids, mask, segments)
    ours_hidden = networks.discriminator.encode(ids, mask, segments, training=False)
    ours_logits = networks.discriminator(ids, mask, segments, training=False)
    real = mask.astype(bool)
    assert ours_logits.shape == hf_logits.shape == (3, 16)
    assert np.std(hf_logits[real]) > 0.1  # outputs are not degenerate
    assert max_diff(ours_hidden.numpy()[real], hf_hidden[real]) <= TOLERANCE
    assert max_diff(ours_logits.numpy()[real], hf_logits[real]) <= TOLERANCE


def test_generator_parity(pair):
    config, _, gen, networks = pair
    ids, mask, segments, positions = make_batch(config, seed=1)
    hf_logits, hf_hidden = hf_forward(gen, ids, mask, segments)
    ours_hidden = networks.generator.encode(ids, mask, segments, training=False)
    ours_logits = networks.generator(ids, mask, segments, positions, training=False)
    real = mask.astype(bool)
    gathered = np.take_along_axis(hf_logits, positions[:, :, None], axis=1)
    assert ours_logits.shape == gathered.shape == (3, 4, config.vocab_size)
    assert np.std(gathered) > 0.1
    assert max_diff(ours_hidden.numpy()[real], hf_hidden[real]) <= TOLERANCE
    assert max_diff(ours_logits, gathered) <= TOLERANCE


def test_parity_detects_a_wrong_weight(pair):
    """The comparison is sensitive: one transposed attention kernel breaks it."""
    config, disc, _, networks = pair
    ids, mask, segments, _ = make_batch(config)
    hf_logits, _ = hf_forward(disc, ids, mask, segments)
    kernel = networks.discriminator.encoder.layers[0].query.kernel
    original = kernel.numpy()
    try:
        kernel.assign(original.T)
        ours = networks.discriminator(ids, mask, segments, training=False).numpy()
    finally:
        kernel.assign(original)
    assert max_diff(ours[mask.astype(bool)], hf_logits[mask.astype(bool)]) > 100 * TOLERANCE


def test_mlm_objective_parity(tmp_path):
    """objective mlm: a full-size ElectraForMaskedLM (single directory) into our generator."""
    config = CONFIGS["projected"]
    torch.manual_seed(1)
    gen = transformers.ElectraForMaskedLM(hf_config(config, True, full_size_generator=True))
    gen = gen.eval()
    perturb(gen, seed=1)
    gen.save_pretrained(tmp_path)
    networks = build_networks(config, objective="mlm")
    load_huggingface(networks, str(tmp_path))
    ids, mask, segments, positions = make_batch(config, seed=2)
    hf_logits, _ = hf_forward(gen, ids, mask, segments)
    ours = networks.generator(ids, mask, segments, positions, training=False)
    gathered = np.take_along_axis(hf_logits, positions[:, :, None], axis=1)
    assert max_diff(ours, gathered) <= TOLERANCE
