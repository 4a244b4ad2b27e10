"""What would break only on a TPU, caught on a CPU: the whole train step compiles with XLA, no op
in it is one TPUs lack (strings, 64-bit floats, resources the TPU cannot hold), every tensor in it
has a static shape, and the data the strategy is given has static batch shapes."""

import random

import numpy as np
import pytest
import tensorflow as tf
from synthetic import dataset_fn, synthetic_examples, tiny_config

from electra_tf.config import config_from_dict
from electra_tf.data import WordPieceTokenizer
from electra_tf.pretraining import PretrainingTask
from electra_tf.training.strategy import describe_tpu, tpu_install_problem
from electra_tf.training.trainer import Trainer

SEQ, VOCAB, BATCH = 32, 256, 8
# Dtypes a TPU computes with; anything else inside the step (strings, float64, complex) would
# fail to place or compile there. Resources are the variables' handles, variants the optimizer's
# and loop's bookkeeping: XLA lowers both. uint64 is the stateless RNG's key and counter, which
# XLA's RNG lowering takes on every backend.
TPU_DTYPES = {tf.float32, tf.bfloat16, tf.float16, tf.int32, tf.int64, tf.uint32, tf.uint64,
              tf.bool, tf.resource, tf.variant, tf.int8, tf.uint8}
# Ops that compute shapes rather than data: XLA needs their values at compile time and folds
# them (a value it cannot fold fails the compilation test above), so their outputs may have an
# unknown length in the graph.
SHAPE_OPS = {"BroadcastGradientArgs", "Shape", "ShapeN", "Size", "Rank"}
STRING_OPS = ("String", "Regex", "Print", "AsString", "DecodeRaw", "EncodeBase64", "Unicode")


def make_config(run_dir, **train):
    settings = dict(run_dir=str(run_dir), batch_size=BATCH, steps=4, log_every=2,
                    checkpoint_every=4, warmup_steps=1, steps_per_execution=2, eval_every=0,
                    text_summary_every=0, jit_compile=True)
    settings.update(train)
    return tiny_config(**settings, seq_length=SEQ, vocab_size=VOCAB)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    examples = synthetic_examples(32, SEQ, VOCAB, max_predictions=4)
    config = make_config(tmp_path_factory.mktemp("tpu_ready"))
    return Trainer(PretrainingTask(config, train_dataset_fn=dataset_fn(examples, BATCH)))


def _one_batch(trainer):
    data = trainer.strategy.distribute_datasets_from_function(trainer._train_dataset_fn)
    return next(iter(data))


def _compiled_step(trainer):
    """The replica step as TrainStep compiles it with train.jit_compile on one replica."""
    return tf.function(trainer.step_fn.replica_step, jit_compile=True)


def test_the_whole_train_step_compiles_with_xla_and_runs(trainer):
    batch = _one_batch(trainer)
    step = tf.constant(0, tf.int64)
    hlo = _compiled_step(trainer).experimental_get_compiler_ir(batch, step)(stage="hlo")
    # One XLA program holds the forward pass, the gradients and the AdamW update.
    assert "ENTRY" in hlo and hlo.count("dot(") > 4
    loss, sums = trainer.step_fn.train(iter(trainer.strategy.distribute_datasets_from_function(
        trainer._train_dataset_fn)), 2)
    assert bool(tf.math.is_finite(loss)) and int(trainer.global_step.numpy()) == 2
    assert all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in tf.nest.flatten(sums))


def _all_ops(graph):
    """(op type, output dtypes, output shapes) of every op in the graph and the functions it
    calls (while-loop bodies, conditionals)."""
    for op in graph.get_operations():
        yield op.type, [t.dtype for t in op.outputs], [t.shape for t in op.outputs]
    for function in graph._functions.values():  # nested bodies are in the graph's library
        body = getattr(function, "graph", None)
        if body is not None and body is not graph:
            yield from _all_ops(body)


def test_no_op_in_the_step_is_one_tpus_lack(trainer):
    batch = _one_batch(trainer)
    graph = _compiled_step(trainer).get_concrete_function(
        batch, tf.TensorSpec([], tf.int64)).graph
    ops = list(_all_ops(graph))
    assert len(ops) > 500
    strings = sorted({kind for kind, _, _ in ops if kind.startswith(STRING_OPS)})
    assert not strings, f"string ops in the train step: {strings}"
    bad_dtypes = sorted({f"{kind}: {dtype.name}" for kind, dtypes, _ in ops for dtype in dtypes
                         if dtype not in TPU_DTYPES})
    assert not bad_dtypes, f"dtypes a TPU does not compute with: {bad_dtypes}"
    dynamic = sorted({f"{kind}: {shape}" for kind, dtypes, shapes in ops
                      for dtype, shape in zip(dtypes, shapes, strict=True)
                      if dtype not in (tf.resource, tf.variant) and kind not in SHAPE_OPS
                      and not shape.is_fully_defined()})
    assert not dynamic, f"tensors without a static shape in the train step: {dynamic[:20]}"


def test_a_string_op_in_the_step_would_be_caught(trainer):
    """The check above sees ops by type: a step that formats a string is flagged."""

    @tf.function
    def leaky(x):
        tf.print("loss", x)
        return x + 1.0

    graph = leaky.get_concrete_function(tf.TensorSpec([2], tf.float32)).graph
    assert any(kind.startswith(STRING_OPS) for kind, _, _ in _all_ops(graph))


def _write_corpus(directory):
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu") for b in ("bar", "den", "fix", "gul")]
    rng = random.Random(0)
    lines = []
    for _ in range(24):
        for _sentence in range(rng.randint(2, 6)):
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + ".")
        lines.append("")
    (directory / "corpus.txt").write_text("\n".join(lines))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + words
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return str(directory / "corpus.txt"), str(directory / "vocab.txt")


def test_the_dataset_given_to_the_strategy_has_static_batch_shapes(tmp_path):
    corpus, vocab = _write_corpus(tmp_path)
    config = config_from_dict({
        "model": {"preset": "tiny", "vocab_size": 64, "num_layers": 1},
        "data": {"seq_length": SEQ, "source": "text", "paths": [corpus], "eval_documents": 0},
        "train": {"run_dir": str(tmp_path / "run"), "batch_size": BATCH, "steps": 2,
                  "jit_compile": True},
    })
    # Two replicas (conftest's two logical CPUs), as on a TPU: each gets BATCH / 2 examples.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    trainer = Trainer(PretrainingTask(config, tokenizer=WordPieceTokenizer(vocab)),
                      strategy=strategy)
    spec = trainer._train_iterator.element_spec
    for name, per_replica in spec.items():
        for replica_spec in per_replica._value_specs:
            assert replica_spec.shape.is_fully_defined(), (name, replica_spec.shape)
            assert replica_spec.shape[0] == BATCH // 2, (name, replica_spec.shape)


def test_the_first_run_check_describes_the_tpu():
    # A v4-32 slice: 16 chips of one core each in a 2x2x4 mesh, 4 hosts of 4 chips.
    coords = np.array([[[x, y, z, 0] for z in range(4) for y in range(2) for x in range(2)]])
    topology = tf.tpu.experimental.Topology(mesh_shape=[2, 2, 4, 1],
                                            device_coordinates=coords.reshape(4, 4, 4))
    line = describe_tpu(topology, replicas=16)
    assert "mesh 2x2x4x1" in line and "4 host(s) x 4 TPU device(s) = 16 device(s)" in line
    assert "16 replica(s)" in line and tf.__version__ in line


def test_the_cpu_build_is_named_as_not_the_tpu_build():
    problem = tpu_install_problem()  # this environment has the CPU `tensorflow` wheel
    assert f"tensorflow {tf.__version__}" in problem and "install_tpu_vm.sh" in problem
