"""Pretraining from prepared shards (data.source: tfrecord): reading, metadata checks, the CLI,
and a preempted run that resumes bit-identically."""

import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from test_pipelines_examples import SEQ, corpus, prepared, read_shards  # noqa: F401

from electra_tf.cli import EXIT_ERROR, EXIT_PREEMPTED
from electra_tf.cli import main as cli_main
from electra_tf.config import ConfigError, load_config
from electra_tf.data import DataError, make_dataset
from electra_tf.data.tokenization import load_tokenizer

VOCAB = 150
QUICKSTART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs",
                          "quickstart.yaml")


def tfrecord_config(corpus, output, *extra):  # noqa: F811
    return load_config(None, ["model.preset=tiny", f"model.vocab_size={VOCAB}",
                              "data.source=tfrecord", f"data.paths=[{output}]",
                              f"data.vocab_file={corpus['vocab']}", f"data.seq_length={SEQ}",
                              "data.deterministic=true", *extra])


def original_ids(batch):
    """The unmasked input ids of a masked batch (masked positions hold the original ids)."""
    ids = batch["input_ids"].numpy().copy()
    for row, positions in enumerate(batch["masked_lm_positions"].numpy()):
        weights = batch["masked_lm_weights"].numpy()[row]
        for k, position in enumerate(positions):
            if weights[k] > 0:
                ids[row, position] = batch["masked_lm_ids"].numpy()[row, k]
    return ids


def test_batches_hold_every_example_with_fresh_masks_each_epoch(corpus, prepared):  # noqa: F811
    output, metadata = prepared
    config = tfrecord_config(corpus, output)
    tokenizer = load_tokenizer(config.data)
    total = metadata["counts"]["examples"]
    batches = list(make_dataset(config, tokenizer, batch_size=1).take(2 * total))
    assert batches[0]["input_ids"].shape == (1, SEQ)
    assert batches[0]["masked_lm_positions"].shape == (1, config.max_predictions)
    # Each epoch holds every example once (in a new order).
    expected = sorted(ids for ids, _, _ in read_shards(output))
    epochs = [[tuple(original_ids(b)[0].tolist()) for b in batches[e * total:(e + 1) * total]]
              for e in (0, 1)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == expected and epochs[0] != epochs[1]
    masks: dict = {}
    for batch in batches:
        for ids, positions in zip(original_ids(batch).tolist(),
                                  batch["masked_lm_positions"].numpy().tolist(), strict=True):
            masks.setdefault(tuple(ids), set()).add(tuple(positions))
    assert any(len(seen) > 1 for seen in masks.values())       # masked again, differently


def test_input_pipelines_read_disjoint_shards(corpus, prepared):  # noqa: F811
    output, metadata = prepared
    config = tfrecord_config(corpus, output)
    tokenizer = load_tokenizer(config.data)
    seen = []
    for pipeline_id in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline_id)
        dataset = make_dataset(config, tokenizer, batch_size=1, input_context=context,
                               repeat=False)
        seen.append([tuple(original_ids(b)[0].tolist()) for b in dataset])
    assert len(seen[0]) + len(seen[1]) == metadata["counts"]["examples"]
    assert sorted(seen[0] + seen[1]) == sorted(ids for ids, _, _ in read_shards(output))


def test_shards_of_another_seq_length_vocab_or_casing_are_refused(corpus, prepared,  # noqa: F811
                                                                  tmp_path):
    output, _ = prepared
    tokenizer = load_tokenizer(tfrecord_config(corpus, output).data)
    with pytest.raises(DataError, match=f"seq_length {SEQ} but data.seq_length is 64"):
        make_dataset(tfrecord_config(corpus, output, "data.seq_length=64"), tokenizer,
                     batch_size=4)
    other = tmp_path / "other-vocab.txt"
    other.write_text(open(corpus["vocab"]).read() + "extra\n")
    with pytest.raises(DataError, match="another vocabulary"):
        make_dataset(tfrecord_config(corpus, output, f"data.vocab_file={other}"), tokenizer,
                     batch_size=4)
    with pytest.raises(DataError, match="lower_case"):
        make_dataset(tfrecord_config(corpus, output, "data.lower_case=false"), tokenizer,
                     batch_size=4)
    with pytest.raises(ConfigError, match="data.vocab_file is not set"):
        load_config(None, ["data.source=tfrecord", f"data.paths=[{output}]"])


def test_incomplete_or_foreign_directories_are_refused(corpus, prepared, tmp_path):  # noqa: F811
    output, metadata = prepared
    tokenizer = load_tokenizer(tfrecord_config(corpus, output).data)
    copy = tmp_path / "copy"
    shutil.copytree(output, copy)
    (copy / metadata["shards"][1]).unlink()
    with pytest.raises(DataError, match="listed in .* but missing"):
        make_dataset(tfrecord_config(corpus, copy), tokenizer, batch_size=4)
    (copy / "metadata.json").unlink()
    with pytest.raises(DataError, match="has no metadata.json"):
        make_dataset(tfrecord_config(corpus, copy), tokenizer, batch_size=4)
    with pytest.raises(DataError, match="has no metadata.json"):
        make_dataset(tfrecord_config(corpus, f"{copy}/*.gz"), tokenizer, batch_size=4)


def cli_args(corpus, output, run_dir, *extra):  # noqa: F811
    sets = ["model.preset=tiny", f"model.vocab_size={VOCAB}", "model.num_layers=1",
            "data.source=tfrecord", f"data.paths=[{output}]",
            f"data.vocab_file={corpus['vocab']}", f"data.seq_length={SEQ}",
            "data.deterministic=true", f"train.run_dir={run_dir}", "train.batch_size=4",
            "train.steps_per_execution=1", "train.text_summary_every=0", "train.warmup_steps=1",
            "train.log_every=5", "train.eval_every=0", "train.keep_checkpoints=100", *extra]
    return ["pretrain", "--config", QUICKSTART, *[a for s in sets for a in ("--set", s)]]


def final_weights(run_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    return {name: reader.get_tensor(name)
            for name, dtype in reader.get_variable_to_dtype_map().items()
            if dtype.is_floating and "save_counter" not in name}


def test_pretraining_from_shards_refuses_mismatched_metadata(corpus, prepared, tmp_path,  # noqa: F811
                                                             capsys):
    output, _ = prepared
    code = cli_main(cli_args(corpus, output, tmp_path / "run", "train.steps=2",
                             "data.seq_length=48"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_ERROR and len(err) == 1 and "data.seq_length is 48" in err[0]
    assert not (tmp_path / "run" / "checkpoints").exists() or not list(
        (tmp_path / "run" / "checkpoints").glob("ckpt-*"))


STEPS, EVERY = 8, 2


@pytest.mark.slow
def test_pretraining_from_shards_resumes_bit_identically(corpus, prepared, tmp_path):  # noqa: F811
    output, _ = prepared
    full_dir, split_dir = tmp_path / "full", tmp_path / "split"
    assert cli_main(cli_args(corpus, output, full_dir, f"train.steps={STEPS}",
                             f"train.checkpoint_every={EVERY}")) == 0
    argv = cli_args(corpus, output, split_dir, f"train.steps={STEPS}",
                    f"train.checkpoint_every={EVERY}")
    first = split_dir / "checkpoints" / f"ckpt-{EVERY}.index"
    done, late = threading.Event(), []

    def preempt():
        deadline = time.monotonic() + 120
        while not first.exists() and not done.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    guard = signal.signal(signal.SIGTERM, lambda signum, frame: late.append(signum))
    killer = threading.Thread(target=preempt, daemon=True)
    try:
        killer.start()
        code = cli_main(argv)
    finally:
        done.set()
        killer.join(timeout=10)
        signal.signal(signal.SIGTERM, guard)
    assert code == EXIT_PREEMPTED and not late
    assert not (split_dir / "checkpoints" / f"ckpt-{STEPS}.index").exists()
    assert cli_main(argv) == 0                      # the same command resumes
    full, resumed = final_weights(full_dir), final_weights(split_dir)
    assert full.keys() == resumed.keys() and len(full) > 10
    for name in full:
        np.testing.assert_array_equal(full[name], resumed[name], err_msg=name)
