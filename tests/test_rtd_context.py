"""benchmarks/rtd_context.py --evaluate: the context score of a trained discriminator."""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

# Loaded by path, like the other benchmark tests (benchmarks/ is not a package).
_spec = importlib.util.spec_from_file_location("rtd_context", os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "benchmarks", "rtd_context.py"))
rtd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rtd)


def _batches(rng, count=3, batch=4, seq=10):
    out = []
    for _ in range(count):
        lengths = rng.integers(3, seq + 1, batch)
        mask = (np.arange(seq)[None] < lengths[:, None]).astype(np.int32)
        labels = ((rng.random((batch, seq)) < 0.3) & (mask > 0)).astype(np.float32)
        ids = rng.integers(5, 40, (batch, seq)).astype(np.int32) * mask
        # A detector's logits here: the label itself, smuggled in through the segment ids.
        out.append((ids, mask, labels.astype(np.int32), labels))
    return out


def test_context_auc_scores_real_tokens_only():
    batches = _batches(np.random.default_rng(0))

    def oracle(ids, mask, segments):
        # Right on every real token; padding gets the highest score, and would cost AUC if
        # it were counted (its label is 0).
        return tf.sigmoid(tf.cast(segments, tf.float32) * 4.0 - 2.0
                          + tf.cast(1 - mask, tf.float32) * 9.0).numpy()

    score, replaced, tokens = rtd.context_auc(oracle, batches)
    assert score == pytest.approx(1.0)
    assert tokens == sum(int(b[1].sum()) for b in batches)
    assert replaced == sum(int(b[3].sum()) for b in batches)
    inverted, _, _ = rtd.context_auc(lambda i, m, s: 1.0 - oracle(i, m, s), batches)
    assert inverted == pytest.approx(0.0, abs=1e-6)


def test_evaluate_runs_scores_a_run_dir(random_run, capsys):
    config, _, _ = random_run
    args = rtd.argparse.Namespace(seq_length=128, batch_size=4, seed=0, steps=0,
                                  work_dir="unused")
    [score] = rtd.evaluate_runs([config.train.run_dir], args)
    assert 0.0 <= score <= 1.0
    line = capsys.readouterr().out
    assert "unigram-replacement AUC" in line and f"{score:.3f}" in line
