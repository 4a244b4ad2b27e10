"""The `electra-tf` command line: help, errors, and a real pretraining run on the default corpus."""

import os

import pytest
from test_trainer import read_scalars

from electra_tf.cli import EXIT_ERROR, build_parser, main
from electra_tf.training.summaries import TRAIN_TAGS


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quickstart config, shortened: default corpus, vocab built into the run dir."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code = main(["pretrain", "--config", "configs/quickstart.yaml",
                 "--set", f"train.run_dir={run_dir}", "--set", "train.steps=20",
                 "--set", "train.log_every=10", "--set", "train.eval_every=10",
                 "--set", "train.text_summary_every=10", "--set", "train.checkpoint_every=10",
                 "--set", "train.steps_per_execution=10", "--set", "train.batch_size=8",
                 "--set", "data.seq_length=64", "--set", "data.vocab_size=2000",
                 "--set", "train.eval_steps=2"])
    return code, run_dir


@pytest.mark.parametrize("command", [[], ["pretrain"], ["build-vocab"], ["export"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: electra-tf" in capsys.readouterr().out


def test_pretrain_on_the_default_corpus(quick_run, capsys):
    code, run_dir = quick_run
    assert code == 0
    assert (run_dir / "vocab.txt").exists() and (run_dir / "config.yaml").exists()
    assert (run_dir / "checkpoints" / "ckpt-20.index").exists()
    scalars = read_scalars(run_dir / "tensorboard" / "train")
    assert set(TRAIN_TAGS) <= set(scalars)
    sample = scalars["replacements"][20].decode()  # the text sample
    assert "⚑" in sample or "**" in sample
    assert set(read_scalars(run_dir / "tensorboard" / "eval")["disc_auc"]) == {10, 20}


def test_rerunning_a_finished_run_resumes_and_does_nothing(quick_run, capsys):
    code, run_dir = quick_run
    again = main(["pretrain", "--config", str(run_dir / "config.yaml")])
    assert again == 0
    assert "completed at step 20" in capsys.readouterr().out


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    code = main(["pretrain", "--config", "configs/quickstart.yaml",
                 "--set", "model.hidden_size=127"])
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert "error:" in err and "not divisible by model.num_heads" in err
    assert "Traceback" not in err


def test_missing_corpus_is_a_clear_error(tmp_path, capsys):
    code = main(["pretrain", "--config", "configs/quickstart.yaml",
                 "--set", f"train.run_dir={tmp_path}", "--set", "data.source=text",
                 "--set", f"data.paths=[{tmp_path}/nothing-*.txt]"])
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert "nothing-*.txt" in err and "Traceback" not in err


def test_training_without_held_out_data(tmp_path, capsys, caplog):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\nthe dog sat too.\n\nanother document.\n" * 40)
    with caplog.at_level("INFO"):
        code = main(["pretrain", "--config", "configs/quickstart.yaml",
                     "--set", f"train.run_dir={tmp_path / 'run'}", "--set", "data.source=text",
                     "--set", f"data.paths=[{corpus}]", "--set", "data.eval_documents=0",
                     "--set", "data.vocab_size=100", "--set", "data.seq_length=16",
                     "--set", "train.batch_size=4", "--set", "train.steps=2",
                     "--set", "train.steps_per_execution=1", "--set", "train.warmup_steps=1"])
    assert code == 0, capsys.readouterr().err
    assert "completed at step 2" in capsys.readouterr().out
    assert "evaluation is skipped" in caplog.text


def test_run_dir_that_is_a_file_fails_before_any_work(tmp_path, capsys):
    # The quickstart builds a vocabulary into the run dir first: the check comes before it.
    run_dir = tmp_path / "a_file"
    run_dir.write_text("x")
    code = main(["pretrain", "--config", "configs/quickstart.yaml",
                 "--set", f"train.run_dir={run_dir}"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "Traceback" not in err
    assert f"train.run_dir {run_dir} is a file" in err


def test_build_vocab_command(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\nthe dog sat too.\n\nanother document here.\n" * 50)
    out = tmp_path / "vocab.txt"
    code = main(["build-vocab", "--config", "configs/quickstart.yaml", "--set", "data.source=text",
                 "--set", f"data.paths=[{corpus}]", "--set", "data.eval_documents=0",
                 "--out", str(out), "--size", "200"])
    assert code == 0 and out.exists()
    tokens = out.read_text().split("\n")
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert os.path.getsize(out) > 0 and "the" in tokens


@pytest.mark.parametrize("size", ["0", "3", "-1", "ten"])
def test_build_vocab_checks_size_up_front(tmp_path, size, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["build-vocab", "--out", str(tmp_path / "vocab.txt"), "--size", size])
    assert exit_info.value.code == 2
    assert "argument --size:" in capsys.readouterr().err
    assert not (tmp_path / "vocab.txt").exists()


def test_build_vocab_into_a_directory_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["build-vocab", "--out", str(out), "--size", "100"])
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"cannot write the vocabulary to {out}: it is a directory" in err
    assert "Traceback" not in err and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
