"""The `electra-tf` command line: help, errors, and a real pretraining run on the default corpus."""

import glob
import os
import re
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from test_trainer import read_scalars

import electra_tf
from electra_tf.cli import EXIT_ERROR, EXIT_NAN, EXIT_PREEMPTED, build_parser, main
from electra_tf.pretraining import TRAIN_TAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(electra_tf.__file__)))


def assert_one_line_error(err, command, *fragments):
    """The CLI's promise for bad input: one line, "electra-tf <command>: error: ...", no trace."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"electra-tf {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


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
    assert_one_line_error(capsys.readouterr().err, "pretrain",
                          "not divisible by model.num_heads")


def test_an_empty_config_file_is_one_clear_line(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set yet\n")
    code = main(["pretrain", "--config", str(empty), "--set", f"train.run_dir={tmp_path / 'r'}"])
    assert code == EXIT_ERROR
    assert_one_line_error(capsys.readouterr().err, "pretrain", f"config file {empty} is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.yaml"]


def test_missing_corpus_is_a_clear_error(tmp_path, capsys):
    code = main(["pretrain", "--config", "configs/quickstart.yaml",
                 "--set", f"train.run_dir={tmp_path}", "--set", "data.source=text",
                 "--set", f"data.paths=[{tmp_path}/nothing-*.txt]"])
    assert code == EXIT_ERROR
    assert_one_line_error(capsys.readouterr().err, "pretrain", "nothing-*.txt")


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
    assert code == EXIT_ERROR
    assert_one_line_error(capsys.readouterr().err, "pretrain",
                          f"train.run_dir {run_dir} is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


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
    err = capsys.readouterr().err
    assert "electra-tf build-vocab: error: argument --size:" in err and "Traceback" not in err
    assert not (tmp_path / "vocab.txt").exists()


def test_build_vocab_into_a_directory_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["build-vocab", "--out", str(out), "--size", "100"])
    assert code == EXIT_ERROR
    assert_one_line_error(capsys.readouterr().err, "build-vocab",
                          f"cannot write the vocabulary to {out}: it is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("content, problem", [
    ("", "is empty"),                        # was: the defaults, "a different model"
    ("model: {num_layers: [2\n", "is not valid YAML"),  # was: a YAML traceback
])
@pytest.mark.parametrize("command", ["pretrain", "export"])
def test_a_damaged_run_config_is_one_line_that_says_how_to_recover(tmp_path, capsys, command,
                                                                    content, problem):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    # Export looks for a checkpoint first: a listed one (its content does not matter here).
    (run_dir / "checkpoints" / "ckpt-1.index").write_bytes(b"")
    (run_dir / "checkpoints" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    saved = run_dir / "config.yaml"
    saved.write_text(content)
    if command == "pretrain":
        argv = _tiny_pretrain_args(_write_corpus(tmp_path), run_dir, "train.steps=2")
    else:
        argv = ["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "export")]
    assert main(argv) == EXIT_ERROR
    assert_one_line_error(capsys.readouterr().err, command, f"{saved} {problem}",
                          "rerun the `electra-tf pretrain` command", f"move {run_dir} away")
    assert saved.read_text() == content  # left as it was, for the user to look at
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint",
                                                                            "ckpt-1.index"]
    assert not (tmp_path / "export").exists()
    assert not (run_dir / "vocab.txt").exists()  # refused before any work


@pytest.fixture
def learning_forbidden(monkeypatch):
    """build-vocab's checks must come before the corpus is read: reading it fails the test."""
    import electra_tf.data.vocab as vocab

    def count_words(*args, **kwargs):
        raise AssertionError("the corpus was read before --out was checked")

    monkeypatch.setattr(vocab, "count_words", count_words)


@pytest.mark.parametrize("out, message", [
    ("out", "cannot write the vocabulary to {tmp}/out: it is a directory"),
    ("a_file/vocab.txt", "cannot write the vocabulary to {tmp}/a_file/vocab.txt: {tmp}/a_file "
                         "is a file, not a directory"),
    ("a_file/deeper/vocab.txt", "{tmp}/a_file is a file, not a directory"),
])
def test_build_vocab_checks_out_before_reading_the_corpus(tmp_path, capsys, learning_forbidden,
                                                          out, message):
    (tmp_path / "out").mkdir()
    (tmp_path / "a_file").write_text("x")
    code = main(["build-vocab", "--out", str(tmp_path / out), "--size", "100"])
    assert code == EXIT_ERROR
    assert_one_line_error(capsys.readouterr().err, "build-vocab",
                          message.format(tmp=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "out"]
    assert not any((tmp_path / "out").iterdir())


def test_build_vocab_into_an_unwritable_directory_fails_up_front(tmp_path, capsys,
                                                                 learning_forbidden,
                                                                 monkeypatch):
    # Permissions cannot be relied on (tests may run as root): the filesystem refuses instead.
    refuse = tf.io.gfile.GFile

    def read_only(path, mode="r"):
        if "w" in mode:
            raise tf.errors.PermissionDeniedError(None, None, f"{path}; Read-only file system")
        return refuse(path, mode)

    monkeypatch.setattr(tf.io.gfile, "GFile", read_only)
    code = main(["build-vocab", "--out", str(tmp_path / "new" / "vocab.txt"), "--size", "100"])
    assert code == EXIT_ERROR
    assert_one_line_error(capsys.readouterr().err, "build-vocab",
                          f"cannot write the vocabulary to {tmp_path}/new/vocab.txt: cannot "
                          f"create files in {tmp_path}", "Read-only file system")
    assert not any(tmp_path.iterdir())


def test_build_vocab_into_a_new_directory(tmp_path, capsys):
    corpus = _write_corpus(tmp_path)
    out = tmp_path / "new" / "deeper" / "vocab.txt"
    code = main(["build-vocab", "--config", "configs/quickstart.yaml", "--set", "data.source=text",
                 "--set", f"data.paths=[{corpus}]", "--set", "data.eval_documents=0",
                 "--out", str(out), "--size", "50"])
    assert code == 0, capsys.readouterr().err
    assert out.read_text().split("\n")[:2] == ["[PAD]", "[UNK]"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "new"]  # no probe left


def test_config_that_is_a_directory_says_so(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    code = main(["pretrain", "--config", str(tmp_path)])
    assert code == EXIT_ERROR
    line = assert_one_line_error(capsys.readouterr().err, "pretrain",
                                 f"config file {tmp_path} is a directory; give the path of a "
                                 "YAML config file")
    assert "does not exist" not in line and "its saved config" not in line
    (run_dir / "config.yaml").write_text("model: {preset: tiny}\n")
    assert main(["pretrain", "--config", str(run_dir)]) == EXIT_ERROR
    assert_one_line_error(capsys.readouterr().err, "pretrain",
                          f"its saved config {run_dir}/config.yaml")


# ---------------------------------------------------------------------------------------------
# Exit codes of `electra-tf pretrain`: 143 after SIGTERM (checkpoint saved, rerun resumes) and
# 3 when the loss becomes NaN/Inf (the last good checkpoint is left alone).

def _tiny_pretrain_args(corpus, run_dir, *settings):
    """A fast CLI pretraining run on a small text corpus (one step per execution)."""
    args = ["pretrain", "--config", "configs/quickstart.yaml",
            "--set", f"train.run_dir={run_dir}", "--set", "data.source=text",
            "--set", f"data.paths=[{corpus}]", "--set", "data.eval_documents=0",
            "--set", "data.vocab_size=100", "--set", "data.seq_length=16",
            "--set", "train.batch_size=4", "--set", "train.steps_per_execution=1",
            "--set", "train.text_summary_every=0"]
    for setting in settings:
        args += ["--set", setting]
    return args


def _write_corpus(directory):
    corpus = directory / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\nthe dog sat too.\n\nanother document.\n" * 40)
    return corpus


def _checkpoint_steps(run_dir):
    return sorted(int(re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(p)).group(1))
                  for p in glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.index")))


PREEMPT_STEPS = 40        # enough that the signal lands mid-run (~0.05 s a step after tracing)
PREEMPT_AFTER = 5         # the first periodic checkpoint: training is under way


@pytest.fixture(scope="module")
def preempted_run(tmp_path_factory):
    """`electra-tf pretrain` in this (main) thread, SIGTERMed by a timer thread once the first
    periodic checkpoint is on disk; what the run left behind is recorded right after it."""
    tmp = tmp_path_factory.mktemp("preempt")
    run_dir = tmp / "run"
    argv = _tiny_pretrain_args(_write_corpus(tmp), run_dir, f"train.steps={PREEMPT_STEPS}",
                               "train.warmup_steps=1", f"train.checkpoint_every={PREEMPT_AFTER}",
                               "train.log_every=5", "train.keep_checkpoints=100")
    first = run_dir / "checkpoints" / f"ckpt-{PREEMPT_AFTER}.index"
    done = threading.Event()
    signalled, late_signals = threading.Event(), []

    def preempt():  # what a TPU VM or spot GPU does: SIGTERM mid-run
        deadline = time.monotonic() + 120
        while not first.exists() and not done.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not done.is_set():
            signalled.set()
            os.kill(os.getpid(), signal.SIGTERM)

    # Catches a SIGTERM that misses the run (outside train()), which would otherwise kill pytest.
    guard = signal.signal(signal.SIGTERM, lambda signum, frame: late_signals.append(signum))
    killer = threading.Thread(target=preempt, daemon=True)
    try:
        killer.start()
        code = main(argv)
    finally:
        done.set()
        killer.join(timeout=10)
        signal.signal(signal.SIGTERM, guard)
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    reader = tf.train.load_checkpoint(latest) if latest else None
    return dict(code=code, argv=argv, run_dir=run_dir, signalled=signalled.is_set(),
                late_signals=late_signals, latest=latest, steps_on_disk=_checkpoint_steps(run_dir),
                step=int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) if reader else None,
                # How many saves the run made, this one included (tf.train.Checkpoint counts).
                saves=int(reader.get_tensor("save_counter/.ATTRIBUTES/VARIABLE_VALUE"))
                if reader else None)


def test_sigterm_saves_a_checkpoint_and_exits_143(preempted_run):
    run = preempted_run
    assert run["signalled"], "training never reached its first checkpoint"
    assert not run["late_signals"], "the SIGTERM arrived when the run was not training"
    assert run["code"] == EXIT_PREEMPTED == 143
    # It stopped early with a checkpoint of the step it stopped at, the newest one: the one a
    # rerun resumes from.
    step = run["step"]
    assert PREEMPT_AFTER <= step < PREEMPT_STEPS
    assert run["latest"].endswith(f"ckpt-{step}") and run["steps_on_disk"][-1] == step
    # That checkpoint was saved by the stop itself, after the periodic ones (the signal often
    # lands during the step-5 save, and the stop then saves ckpt-5 again).
    assert run["saves"] == step // PREEMPT_AFTER + 1


def test_rerunning_a_preempted_run_resumes_and_completes(preempted_run, capsys, caplog):
    run = preempted_run
    assert run["code"] == EXIT_PREEMPTED and run["step"] < PREEMPT_STEPS
    with caplog.at_level("INFO", logger="electra_tf"):
        again = main(run["argv"])  # the same command
    captured = capsys.readouterr()
    assert again == 0, captured.err
    assert f"completed at step {PREEMPT_STEPS}." in captured.out
    assert f"resumed from {run['latest']} at step {run['step']}" in caplog.text
    assert _checkpoint_steps(run["run_dir"])[-1] == PREEMPT_STEPS


def test_non_finite_loss_exits_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # warmup: lr is 0 for step 1 (a good checkpoint), then 1e30 blows the weights up.
    run_dir = tmp_path / "run"
    code = main(_tiny_pretrain_args(_write_corpus(tmp_path), run_dir, "train.steps=10",
                                    "train.learning_rate=1e30", "train.warmup_steps=2",
                                    "train.checkpoint_every=1", "train.log_every=1",
                                    "train.keep_checkpoints=100"))
    captured = capsys.readouterr()
    assert code == EXIT_NAN == 3, captured.err
    line = assert_one_line_error(captured.err, "pretrain", "stopping without saving",
                                 "The last good checkpoint is ")
    assert re.search(r"(loss|weights) became (nan|inf|-inf|NaN or Inf)", line), line
    bad_step = int(re.search(r" step (\d+)", line).group(1))
    good = re.search(r"The last good checkpoint is (\S+?ckpt-(\d+))\.", line)
    assert good, line  # the run had a good checkpoint before it diverged
    good_path, good_step = good.group(1), int(good.group(2))
    assert good_step < bad_step < 10
    # Nothing was saved after the last good checkpoint, and it still holds finite weights.
    assert _checkpoint_steps(run_dir)[-1] == good_step
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")) == good_path
    reader = tf.train.load_checkpoint(good_path)
    floats = [name for name, dtype in reader.get_variable_to_dtype_map().items()
              if dtype.is_floating]
    assert any("/.ATTRIBUTES/VARIABLE_VALUE" in name for name in floats)
    for name in floats:
        assert np.isfinite(reader.get_tensor(name)).all(), name
    assert "completed at step" not in captured.out
