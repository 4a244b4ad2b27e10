"""Parity with HuggingFace's ElectraForSequenceClassification / ElectraForTokenClassification:
weights copied from random HF models give the same logits (<= 1e-4, padded batch), and our HF
export loads with `from_pretrained` and gives our logits."""

import numpy as np
import pytest
import torch  # the test extra installs it: when missing, these tests fail, never skip
import transformers
from test_parity_hf import make_batch, max_diff, perturb

from electra_tf.config import ModelConfig
from electra_tf.finetune.hf import export_hf_task_model, load_hf_task_model
from electra_tf.finetune.model import build_model

TOLERANCE = 1e-4
CONFIG = ModelConfig(vocab_size=1000, embedding_size=64, hidden_size=128, num_layers=2,
                     num_heads=4, intermediate_size=256)
CASES = {  # kind: (HF class, num_labels)
    "classification": (transformers.ElectraForSequenceClassification, 3),
    "regression": (transformers.ElectraForSequenceClassification, 1),
    "tagging": (transformers.ElectraForTokenClassification, 5),
}


def hf_config(num_labels):
    return transformers.ElectraConfig(
        vocab_size=CONFIG.vocab_size, embedding_size=CONFIG.embedding_size,
        hidden_size=CONFIG.hidden_size, num_hidden_layers=CONFIG.num_layers,
        num_attention_heads=CONFIG.num_heads, intermediate_size=CONFIG.intermediate_size,
        max_position_embeddings=CONFIG.max_position_embeddings,
        type_vocab_size=CONFIG.type_vocab_size, layer_norm_eps=CONFIG.layer_norm_epsilon,
        num_labels=num_labels, attn_implementation="eager")


def hf_logits(model, ids, mask, segments):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids, dtype=torch.long),
                     attention_mask=torch.tensor(mask, dtype=torch.long),
                     token_type_ids=torch.tensor(segments, dtype=torch.long)).logits.numpy()


def compare(kind, hf_out, ours, mask):
    if kind == "tagging":  # per token: compare at the real positions
        real = mask.astype(bool)
        return max_diff(hf_out[real], ours[real])
    return max_diff(hf_out, ours)


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request, tmp_path_factory):
    kind = request.param
    hf_class, num_labels = CASES[kind]
    torch.manual_seed(0)
    hf = hf_class(hf_config(num_labels)).eval()
    perturb(hf)
    root = tmp_path_factory.mktemp(f"hf_{kind}")
    hf.save_pretrained(root)
    ours = build_model(CONFIG, kind, num_labels)
    load_hf_task_model(ours, str(root))
    return kind, hf, ours


def test_logits_match_hf(pair):
    kind, hf, ours = pair
    ids, mask, segments, _ = make_batch(CONFIG)
    expected = hf_logits(hf, ids, mask, segments)
    got = ours(ids, mask, segments, training=False).numpy()
    assert got.shape == expected.shape
    assert np.std(expected) > 0.05  # not degenerate
    assert compare(kind, expected, got, mask) <= TOLERANCE


def test_a_wrong_head_weight_is_detected(pair):
    kind, hf, ours = pair
    ids, mask, segments, _ = make_batch(CONFIG, seed=3)
    expected = hf_logits(hf, ids, mask, segments)
    kernel = ours.head.dense.kernel
    original = kernel.numpy()
    try:
        kernel.assign(original * 1.1)
        got = ours(ids, mask, segments, training=False).numpy()
    finally:
        kernel.assign(original)
    assert compare(kind, expected, got, mask) > 100 * TOLERANCE


def test_our_export_loads_in_transformers(pair, tmp_path):
    kind, _, ours = pair
    names = [f"label_{i}" for i in range(ours.num_outputs)]
    export_hf_task_model(ours, CONFIG, kind, names, str(tmp_path), None)
    loaded = CASES[kind][0].from_pretrained(str(tmp_path), attn_implementation="eager").eval()
    if kind != "regression":
        assert loaded.config.id2label == dict(enumerate(names))
    else:
        assert loaded.config.problem_type == "regression"
    ids, mask, segments, _ = make_batch(CONFIG, seed=5)
    expected = ours(ids, mask, segments, training=False).numpy()
    assert compare(kind, hf_logits(loaded, ids, mask, segments), expected, mask) <= TOLERANCE
