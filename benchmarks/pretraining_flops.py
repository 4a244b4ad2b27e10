"""Analytic training FLOPs of one pretraining step, ELECTRA (generator included) or MLM.

The formula is the one in benchmarks/train_step.py's docstring (a multiply-add counts 2 FLOPs;
training = 3 x forward matmul FLOPs; embedding lookups, softmax, layer norm and sampling are
left out). Pure Python, no TensorFlow, so the test of the accounting runs in milliseconds.

    per encoder (T = batch*seq tokens, hidden H, FFN I, L layers, embedding E):
        L * (2*T*(4*H*H + 2*H*I) + 2 * 2*batch*seq*seq*H)  +  2*T*E*H  (only when E != H)
    ELECTRA = generator encoder (hidden Hg, FFN 4*Hg) + generator head 2*P*(Hg*E + E*V)
              + discriminator encoder (H, I) + discriminator head 2*T*(H*H + H)
    MLM     = one encoder of the discriminator's size (H, I) + its head 2*P*(H*E + E*V)

P = batch * max_predictions (the gathered masked positions).
"""

from __future__ import annotations

import math

TRAIN_MULTIPLIER = 3  # forward + backward (2x forward)


def encoder_forward_flops(batch: int, seq: int, hidden: int, intermediate: int, layers: int,
                          embedding: int) -> int:
    tokens = batch * seq
    per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * intermediate)
    per_layer += 2 * 2 * batch * seq * seq * hidden
    project = 2 * tokens * embedding * hidden if embedding != hidden else 0
    return layers * per_layer + project


def mlm_head_forward_flops(predictions: int, hidden: int, embedding: int, vocab: int) -> int:
    return 2 * predictions * (hidden * embedding + embedding * vocab)


def step_flops(model, objective: str, batch: int, seq: int, max_predictions: int) -> int:
    """Training FLOPs of one optimizer step. `model` is an electra_tf ModelConfig (or anything
    with its size fields and generator_* properties); objective "electra" or "mlm"."""
    if objective not in ("electra", "mlm"):
        raise ValueError(f"objective must be electra or mlm, got {objective!r}")
    predictions = batch * max_predictions
    vocab, emb = model.vocab_size, model.embedding_size
    disc = encoder_forward_flops(batch, seq, model.hidden_size, model.intermediate_size,
                                 model.num_layers, emb)
    if objective == "mlm":
        forward = disc + mlm_head_forward_flops(predictions, model.hidden_size, emb, vocab)
        return TRAIN_MULTIPLIER * forward
    hg = model.generator_hidden_size
    gen = encoder_forward_flops(batch, seq, hg, model.generator_intermediate_size,
                                model.num_layers, emb)
    gen += mlm_head_forward_flops(predictions, hg, emb, vocab)
    disc_head = 2 * batch * seq * (model.hidden_size * model.hidden_size + model.hidden_size)
    return TRAIN_MULTIPLIER * (gen + disc + disc_head)


def steps_for_budget(budget_flops: float, flops_per_step: int, multiple: int = 1) -> int:
    """The number of steps (a multiple of `multiple`, at least one multiple) whose FLOPs are
    closest to `budget_flops`."""
    chunks = max(1, round(budget_flops / (flops_per_step * multiple)))
    return int(chunks * multiple)


def minutes_equivalent(budget_flops: float, flops_per_step: int, tokens_per_step: int,
                       tokens_per_second: float) -> float:
    """Wall-clock minutes the budget takes at a measured throughput of the same step."""
    return budget_flops / flops_per_step * tokens_per_step / tokens_per_second / 60.0


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student t quantile (table; df > 30 uses the normal 1.96 limit loosely)."""
    table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
             2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
             2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
    if df < 1:
        raise ValueError("a t-interval needs at least two values")
    return table[df - 1] if df <= len(table) else 1.96


def mean_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile_975(n - 1) * sd / math.sqrt(n)
