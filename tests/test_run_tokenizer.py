"""The run's vocabulary: a warm start uses the one that came with its checkpoint."""

import pytest

from electra_tf.config import ConfigError, config_from_dict, save_config
from electra_tf.data import SPECIAL_TOKENS
from electra_tf.training.run_tokenizer import checkpoint_vocab, resolve_tokenizer

WORDS = ["the", "cat", "sat", "on", "mat", "##s", "."]


def write_vocab(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*SPECIAL_TOKENS, *WORDS]) + "\n")
    return str(path)


def test_vocab_beside_a_tf1_checkpoint_or_in_an_hf_export(tmp_path):
    google = write_vocab(tmp_path / "electra_small" / "vocab.txt")
    assert checkpoint_vocab(str(tmp_path / "electra_small" / "model.ckpt-1000000")) == google
    assert checkpoint_vocab(str(tmp_path / "electra_small")) == google
    exported = write_vocab(tmp_path / "hf" / "discriminator" / "vocab.txt")
    assert checkpoint_vocab(str(tmp_path / "hf")) == exported
    assert checkpoint_vocab(str(tmp_path / "nothing" / "model.ckpt")) is None


def test_vocab_of_an_electra_tf_run(tmp_path):
    vocab = write_vocab(tmp_path / "elsewhere" / "my_vocab.txt")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_config(config_from_dict({"data": {"vocab_file": vocab}}), str(run / "config.yaml"))
    for path in (run, run / "checkpoints", run / "checkpoints" / "ckpt-10"):
        assert checkpoint_vocab(str(path)) == vocab, path


def test_warm_start_takes_the_checkpoint_vocab_and_its_size(tmp_path):
    google = write_vocab(tmp_path / "electra_small" / "vocab.txt")
    config = config_from_dict({"train": {"run_dir": str(tmp_path / "run"),
                                         "init_checkpoint": str(tmp_path / "electra_small")}})
    resolved, tokenizer = resolve_tokenizer(config)
    assert resolved.data.vocab_file == google
    assert tokenizer.vocab_size == resolved.model.vocab_size == len(SPECIAL_TOKENS) + len(WORDS)
    assert config.data.vocab_file is None  # the config given is left as it was
    assert not (tmp_path / "run" / "vocab.txt").exists()  # no vocabulary of its own


def test_warm_start_without_a_vocab_is_a_clear_error(tmp_path):
    config = config_from_dict({"train": {"run_dir": str(tmp_path / "run"),
                                         "init_checkpoint": str(tmp_path / "model.ckpt")}})
    with pytest.raises(ConfigError, match="set data.vocab_file to the vocabulary the "
                                          "checkpoint was trained with"):
        resolve_tokenizer(config)
