"""`electra-tf export` on a run directory written by the Trainer: both formats, the demo, and
one-line errors for bad run directories."""

import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from synthetic import dataset_fn, synthetic_examples

from electra_tf.cli import main
from electra_tf.config import config_from_dict

WORDS = ("the a of to and in is was chef cooked ate meal dog cat sat on mat water body large "
         "person who works hospital sleeps man went store sky sun paper . , !").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing"]
SEQ = 16
BATCH = 8


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """Four training steps of a tiny model on synthetic batches, checkpoints at steps 2 and 4."""
    from electra_tf.training.trainer import Trainer

    root = tmp_path_factory.mktemp("cli")
    vocab_path = root / "vocab.txt"
    vocab_path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    run_dir = root / "run"
    config = config_from_dict({
        "model": {"preset": "tiny", "vocab_size": len(VOCAB), "num_layers": 1},
        "data": {"seq_length": SEQ, "vocab_file": str(vocab_path)},
        "train": {"run_dir": str(run_dir), "batch_size": BATCH, "steps": 4,
                  "checkpoint_every": 2, "steps_per_execution": 2, "log_every": 2,
                  "warmup_steps": 1, "eval_every": 0, "eval_steps": 1,
                  "text_summary_every": 0, "strategy": "default"},
    })
    examples = synthetic_examples(32, SEQ, len(VOCAB), max_predictions=config.max_predictions)
    result = Trainer(config, train_dataset_fn=dataset_fn(examples, BATCH),
                     eval_dataset_fn=dataset_fn(examples, BATCH)).train()
    assert result.step == 4
    return str(run_dir)


def test_saved_model_with_demo(trained_run, tmp_path, capsys):
    out = str(tmp_path / "saved_model")
    assert main(["export", "--run-dir", trained_run, "--out", out, "--demo"]) == 0
    printed = capsys.readouterr().out
    assert f"exported saved_model to {out}" in printed
    assert os.path.isfile(os.path.join(out, "saved_model.pb"))
    print(printed)

    # The report agrees with the SavedModel itself.
    import tensorflow_text  # noqa: F401

    model = tf.saved_model.load(out)
    got = model.signatures["serving_default"](text=tf.constant(["the chef ate the meal"]))
    probs = got["replaced_probability"].numpy()[0]
    assert got["token_ids"].numpy()[0, 3] == VOCAB.index("ate")
    row = re.search(r">> ate <<\s+([0-9.]+)\s+#*\s*<- replaced", printed)
    assert row, printed
    assert float(row.group(1)) == pytest.approx(probs[3], abs=1e-3)
    verdict = re.search(r"flagged: (yes|no) - .* it ranks (\d+) of (\d+) tokens", printed)
    assert verdict, printed
    assert verdict.group(1) == ("yes" if probs[3] > 0.5 else "no")
    words = probs[1:6]
    assert int(verdict.group(2)) == 1 + int(np.sum(words > probs[3]))
    assert int(verdict.group(3)) == 5
    assert "original:  the chef cooked the meal" in printed
    assert "generator's guesses for 'the chef [MASK] the meal'" in printed


def test_huggingface_format(trained_run, tmp_path, capsys):
    out = str(tmp_path / "hf")
    assert main(["export", "--run-dir", trained_run, "--out", out, "--format", "huggingface",
                 "--step", "2"]) == 0
    assert f"exported huggingface to {out}" in capsys.readouterr().out
    for role in ("discriminator", "generator"):
        for name in ("config.json", "model.safetensors", "vocab.txt"):
            assert os.path.isfile(os.path.join(out, role, name)), (role, name)

    # Exporting again replaces the earlier export of the same format...
    stale = os.path.join(out, "discriminator", "stale.txt")
    open(stale, "w").close()
    assert main(["export", "--run-dir", trained_run, "--out", out, "--format", "huggingface"]) == 0
    assert not os.path.exists(stale) and os.path.isfile(os.path.join(out, "generator",
                                                                      "model.safetensors"))
    # ...but another format, or unrelated files, are never overwritten or mixed in.
    capsys.readouterr()
    assert main(["export", "--run-dir", trained_run, "--out", out]) == 1
    err = capsys.readouterr().err
    assert f"--out {out} is not empty and holds no earlier saved_model export" in err
    assert os.path.isfile(os.path.join(out, "discriminator", "config.json"))


def _no_config(run_dir, root):
    path = root / "not_a_run"
    path.mkdir()
    return str(path), [f"{path}", "config.yaml", "electra-tf pretrain"]


def _no_checkpoint(run_dir, root):
    path = root / "fresh_run"
    path.mkdir()
    shutil.copy(os.path.join(run_dir, "config.yaml"), path / "config.yaml")
    return str(path), [os.path.join(str(path), "checkpoints"), "no checkpoint"]


def _missing_dir(run_dir, root):
    path = str(root / "does_not_exist")
    return path, [path, "does not exist", "--run-dir"]


@pytest.mark.parametrize("make", [_missing_dir, _no_config, _no_checkpoint],
                         ids=["missing-dir", "no-config", "no-checkpoint"])
def test_bad_run_dir_is_a_one_line_error(make, trained_run, tmp_path, capsys):
    run_dir, fragments = make(trained_run, tmp_path)
    code = main(["export", "--run-dir", run_dir, "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("electra-tf export: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not os.path.exists(tmp_path / "out")


def test_missing_step_lists_the_available_ones(trained_run, tmp_path, capsys):
    code = main(["export", "--run-dir", trained_run, "--out", str(tmp_path / "out"),
                 "--step", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "no checkpoint for step 3" in err and "available steps: 2, 4" in err


def _moved_run(trained_run, tmp_path, vocab_file: str, keep_vocab_in_run_dir: bool = False):
    """A copy of the run whose saved config points data.vocab_file somewhere else."""
    moved = tmp_path / "moved_run"
    shutil.copytree(trained_run, moved)
    config = (moved / "config.yaml").read_text()
    vocab = re.search(r"vocab_file: (\S+)", config).group(1)
    if keep_vocab_in_run_dir:
        shutil.copy(vocab, moved / "vocab.txt")
    (moved / "config.yaml").write_text(config.replace(vocab, vocab_file))
    return moved


def test_missing_vocab_is_a_one_line_error(trained_run, tmp_path, capsys):
    moved = _moved_run(trained_run, tmp_path, str(tmp_path / "gone.txt"))
    code = main(["export", "--run-dir", str(moved), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "gone.txt" in err and "data.vocab_file" in err
    # A failed export leaves an earlier export in --out as it was.
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "saved_model.pb").write_text("an earlier export")
    assert main(["export", "--run-dir", str(moved), "--out", str(earlier)]) == 1
    assert (earlier / "saved_model.pb").read_text() == "an earlier export"


def test_moved_run_finds_its_vocab_in_the_run_dir(trained_run, tmp_path, capsys):
    moved = _moved_run(trained_run, tmp_path, "/elsewhere/vocab.txt", keep_vocab_in_run_dir=True)
    out = tmp_path / "hf"
    assert main(["export", "--run-dir", str(moved), "--out", str(out),
                 "--format", "huggingface"]) == 0, capsys.readouterr().err
    assert (out / "discriminator" / "vocab.txt").read_text().split() == VOCAB


def test_checkpoint_not_matching_the_config_is_a_one_line_error(trained_run, tmp_path, capsys):
    edited = tmp_path / "edited_run"
    shutil.copytree(trained_run, edited)
    config = (edited / "config.yaml").read_text()
    assert "num_layers: 1\n" in config
    (edited / "config.yaml").write_text(config.replace("num_layers: 1\n", "num_layers: 2\n"))
    code = main(["export", "--run-dir", str(edited), "--out", str(tmp_path / "out"),
                 "--format", "huggingface"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "does not match" in err and "config.yaml" in err


def test_demo_prefers_a_pair_whose_changed_word_is_one_token():
    from electra_tf.export.demo import pick_pair

    def sentence(text):
        return ["[CLS]", *text.split(), "[SEP]"]

    split = [sentence("the chef cooked the meal"), sentence("the chef at ##e the meal")]
    whole = [sentence("a large body of water"), sentence("a large body of paper")]
    unknown = [sentence("a large body of water"), sentence("a large body of [UNK]")]
    assert pick_pair(split + whole) == 1
    assert pick_pair(unknown + split) == 1      # known pieces beat [UNK]
    assert pick_pair(unknown + unknown) == 0    # nothing better: the first
    assert pick_pair(whole + split) == 0
