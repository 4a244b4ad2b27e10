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
         "person who works hospital sleeps man went store sky sun paper tool used for cutting "
         "wood act going from one place another . , !").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing"]
SEQ = 16
BATCH = 8


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """Four training steps of a tiny model on synthetic batches, checkpoints at steps 2 and 4."""
    from electra_tf.pretraining import PretrainingTask
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
    result = Trainer(PretrainingTask(config, train_dataset_fn=dataset_fn(examples, BATCH),
                                     eval_dataset_fn=dataset_fn(examples, BATCH))).train()
    assert result.step == 4
    return str(run_dir)


def test_saved_model_with_demo(trained_run, tmp_path, capsys):
    out = str(tmp_path / "saved_model")
    assert main(["export", "--run-dir", trained_run, "--out", out, "--demo"]) == 0
    printed = capsys.readouterr().out
    assert f"exported saved_model to {out}" in printed
    assert os.path.isfile(os.path.join(out, "saved_model.pb"))
    print(printed)

    # The report agrees with the SavedModel itself, pair by pair (every word of the demo is one
    # token of this vocabulary, so word i is token i + 1).
    import tensorflow_text  # noqa: F401

    from electra_tf.export.demo import DEFAULT_PAIRS, changed_word

    serve = tf.saved_model.load(out).signatures["serving_default"]
    rows = re.findall(r"^ +([0-9.]+) +(\d+)/(\d+) +(yes|no)  (.+?)  \(", printed, re.M)
    assert len(rows) == len(DEFAULT_PAIRS), printed
    flagged = false_alarms = others = 0
    for (shown_p, rank, count, verdict, corrupted), (original, expected) in zip(
            rows, DEFAULT_PAIRS, strict=True):
        assert corrupted == expected
        index, _, new_word = changed_word(original, corrupted)
        got = serve(text=tf.constant([corrupted]))
        assert got["token_ids"].numpy()[0, index + 1] == VOCAB.index(new_word)
        words = got["replaced_probability"].numpy()[0, 1:len(corrupted.split()) + 1]
        p = words[index]
        assert float(shown_p) == pytest.approx(p, abs=1e-3)
        assert (int(rank), int(count)) == (1 + int(np.sum(words > p)), len(words))
        assert verdict == ("yes" if p > 0.5 else "no")
        flagged += p > 0.5
        false_alarms += int(np.sum(np.delete(words, index) > 0.5))
        others += len(words) - 1
    assert (f"flagged {flagged} of {len(rows)} replaced words; false alarms: {false_alarms} of "
            f"{others} other tokens") in printed
    assert "The replaced word with the highest P(replaced), per token:" in printed
    assert ">> " in printed
    assert "generator's guesses for" in printed


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


def test_demo_verdict_on_a_word_split_into_pieces_and_on_unknown_words():
    from electra_tf.export.demo import Verdict

    tokens = ["[CLS]", "a", "x", "##y", "c", "[SEP]"]
    probs = np.array([0.0, 0.1, 0.6, 0.2, 0.7, 0.0])

    def verdict(tokens, span):
        return Verdict("a b c", "a xy c", "b", "xy", tokens, probs,
                       ["[CLS]", "a", "b", "c", "[SEP]"], np.zeros(5), span)

    pieces = verdict(tokens, (2, 4))
    assert pieces.detectable and pieces.replaced_p == 0.6 and pieces.flagged
    assert pieces.rank == 2 and pieces.false_alarms == ["c"]
    unknown = verdict(["[CLS]", "a", "[UNK]", "##y", "c", "[SEP]"], (2, 4))
    assert not unknown.detectable
    assert not verdict(tokens, (2, 2)).detectable          # the same tokens: nothing replaced


def test_demo_summary_counts_flags_and_false_alarms():
    from electra_tf.export.demo import Verdict, summary

    def verdict(corrupted, probs, new_index):
        words = corrupted.split()
        original = " ".join(["orig" if i == new_index else w for i, w in enumerate(words)])
        tokens = ["[CLS]", *words, "[SEP]"]
        return Verdict(original, corrupted, "orig", words[new_index], tokens,
                       np.array([0.0, *probs, 0.0]),
                       ["[CLS]", *original.split(), "[SEP]"], np.zeros(len(tokens)),
                       (new_index + 1, new_index + 2))

    lines = summary([verdict("a b c", [0.2, 0.9, 0.6], 1),     # flagged, c a false alarm
                     verdict("d e f g", [0.4, 0.3, 0.45, 0.1], 2),   # 0.45: ranks 1, missed
                     verdict("h i", [0.5, 0.7], 0)])            # exactly 0.5 is not flagged
    rows = [line.split() for line in lines if line.startswith("  ") and "/" in line]
    assert [r[:3] for r in rows] == [["0.900", "1/3", "yes"], ["0.450", "1/4", "no"],
                                     ["0.500", "2/2", "no"]]
    assert "flagged 1 of 3 replaced words; false alarms: 2 of 6 other tokens (c, i)" in lines
    assert any("misses them" in line for line in lines)
    assert not any("misses them" in line for line in summary([verdict("a b", [0.9, 0.1], 0)]))


def test_demo_with_only_unknown_replacements_says_so(trained_run, tmp_path):
    from electra_tf.export import export_run
    from electra_tf.export.demo import run_demo

    out = export_run(trained_run, str(tmp_path / "saved_model"))
    report = run_demo(out, (("a large body of water", "a large body of zebra"),))
    assert "unknown to the vocabulary, nothing to detect" in report
    assert report.endswith("None of the replaced words is in the vocabulary: nothing to detect.")


def test_demo_on_an_mlm_run_says_there_is_no_discriminator(tmp_path):
    from electra_tf.export import export_run
    from electra_tf.export.demo import run_demo
    from electra_tf.pretraining import PretrainingTask
    from electra_tf.training.trainer import Trainer

    vocab_path = tmp_path / "vocab.txt"
    vocab_path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    config = config_from_dict({
        "model": {"preset": "tiny", "vocab_size": len(VOCAB), "num_layers": 1},
        "objective": {"kind": "mlm"},
        "data": {"seq_length": SEQ, "vocab_file": str(vocab_path)},
        "train": {"run_dir": str(tmp_path / "run"), "batch_size": BATCH, "steps": 2,
                  "checkpoint_every": 2, "steps_per_execution": 2, "log_every": 2,
                  "warmup_steps": 1, "eval_every": 0, "text_summary_every": 0,
                  "strategy": "default"},
    })
    examples = synthetic_examples(16, SEQ, len(VOCAB), max_predictions=config.max_predictions)
    Trainer(PretrainingTask(config, train_dataset_fn=dataset_fn(examples, BATCH))).train()
    report = run_demo(export_run(str(tmp_path / "run"), str(tmp_path / "saved_model")))
    assert "has no discriminator (an `objective: mlm` run): nothing to detect" in report
    assert "generator's guesses for 'a tool used for cutting [MASK]'" in report
