"""Config: presets match the reference table, YAML loading, overrides, clear errors."""

import pytest

from electra_tf.config import (
    ConfigError,
    ModelConfig,
    RunConfig,
    config_from_dict,
    load_config,
    model_preset,
    read_saved_config,
    save_config,
)


@pytest.mark.parametrize("name, sizes, generator", [
    ("small", (128, 256, 12, 4, 1024), (64, 1, 256)),
    ("base", (768, 768, 12, 12, 3072), (256, 4, 1024)),
    ("large", (1024, 1024, 24, 16, 4096), (256, 4, 1024)),
])
def test_presets_match_the_reference_table(name, sizes, generator):
    config = model_preset(name)
    assert (config.embedding_size, config.hidden_size, config.num_layers, config.num_heads,
            config.intermediate_size) == sizes
    assert (config.generator_hidden_size, config.generator_num_heads,
            config.generator_intermediate_size) == generator
    assert config.vocab_size == 30522 and config.layer_norm_epsilon == 1e-12
    assert config.dropout == 0.1 and config.initializer_range == 0.02


def test_max_predictions_follow_the_reference_formula():
    assert config_from_dict({"data": {"seq_length": 128}}).max_predictions == 19
    assert config_from_dict({"data": {"seq_length": 512}}).max_predictions == 79
    large = config_from_dict({"objective": {"mask_prob": 0.25}, "data": {"seq_length": 512}})
    assert large.max_predictions == int(0.255 * 512)


@pytest.mark.parametrize("data, message", [
    ({"model": {"hidden_size": 250}}, "not divisible by model.num_heads"),
    ({"model": {"generator_fraction": 1.5}}, "generator_fraction must be in (0, 1]"),
    ({"model": {"generator_fraction": 0.0}}, "generator_fraction must be in (0, 1]"),
    ({"data": {"seq_length": 1024}}, "above model.max_position_embeddings"),
    ({"model": {"hidden": 3}}, "model: unknown field(s) ['hidden']"),
    ({"train": {"steps": "many"}}, "train.steps: expected an integer"),
    ({"train": {"precision": "fp8"}}, "train.precision must be"),
    ({"data": {"source": "text"}}, "data.paths is empty"),
    ({"model": {"preset": "huge"}}, "model.preset 'huge' is unknown"),
    ({"train": {"batch_size": 30, "grad_accum_steps": 4}}, "divisible by"),
    ({"trian": {"steps": 3}}, "unknown section(s) ['trian']"),
    ({"model": "small"}, "section 'model' must be a mapping of fields"),
    ({"train": 5}, "section 'train' must be a mapping of fields"),
    ({"model": {"type_vocab_size": 1}}, "model.type_vocab_size must be at least 2"),
    ({"model": {"layer_norm_epsilon": 0.0}}, "model.layer_norm_epsilon must be > 0"),
    ({"model": {"initializer_range": -1}}, "model.initializer_range must be > 0"),
    ({"train": {"clip_norm": -1}}, "train.clip_norm must be > 0"),
    ({"train": {"adam_beta1": 1.5}}, "train.adam_beta1 must be in [0, 1)"),
    ({"train": {"adam_beta2": 1}}, "train.adam_beta2 must be in [0, 1)"),
    ({"train": {"adam_epsilon": 0}}, "train.adam_epsilon must be > 0"),
    ({"train": {"weight_decay": -0.1}}, "train.weight_decay must be >= 0"),
    ({"train": {"steps": 1.5}}, "train.steps: expected an integer"),
])
def test_invalid_values_give_clear_messages(data, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(data, "my.yaml")
    assert message in str(error.value)
    assert "my.yaml" in str(error.value)


def test_yaml_file_with_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  preset: tiny\ntrain:\n  steps: 10\n  learning_rate: 1e-3\n")
    config = load_config(path, ["train.steps=100", "data.paths=[a.txt, b.txt]",
                                "data.source=text", "train.jit_compile=true"])
    assert config.train.steps == 100 and config.train.jit_compile is True
    assert config.data.paths == ["a.txt", "b.txt"]
    assert config.model.hidden_size == 128  # from the tiny preset
    assert config.train.learning_rate == 1e-3


def test_whole_numbers_in_float_notation_are_integers():
    config = config_from_dict({"train": {"steps": "1e3", "warmup_steps": 100.0}})
    assert config.train.steps == 1000 and isinstance(config.train.steps, int)
    assert config.train.warmup_steps == 100


@pytest.mark.parametrize("override, message", [
    ("train.steps", "must look like section.field=value"),
    ("steps=3", "the key must be section.field"),
    ("train.nope=3", "--set train.nope=3: train has no field 'nope'"),
    ("trian.steps=3", "--set trian.steps=3: unknown section 'trian'"),
    # A bad value is blamed on the --set that gave it, not on the YAML file.
    ("train.steps=abc", "--set train.steps=abc: expected an integer, got 'abc'"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listed)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("# caf\xe9\ntrain:\n  steps: 3\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml is not UTF-8 text"):
        load_config(latin1)


def test_saved_config_round_trips(tmp_path):
    config = config_from_dict({"model": {"preset": "tiny"}, "train": {"steps": 7}})
    save_config(config, str(tmp_path / "config.yaml"))
    assert read_saved_config(str(tmp_path / "config.yaml")) == config
    assert isinstance(RunConfig().model, ModelConfig)


@pytest.mark.parametrize("name", ["quickstart", "small", "base", "large"])
def test_shipped_configs_load(name):
    config = load_config(f"configs/{name}.yaml")
    if name != "quickstart":
        assert config.model == model_preset(name)


# ---------------------------------------------------------------------------------------------
# Configs on a non-local filesystem (gs:// in practice): TensorFlow's in-memory ram:// stands in.

def _ram_dir(tmp_path):
    """A fresh directory on TensorFlow's in-memory filesystem (process-wide, so named per test)."""
    import tensorflow as tf

    path = f"ram://{tmp_path.name}"
    tf.io.gfile.makedirs(path)
    return path


def test_config_is_read_from_a_non_local_filesystem(tmp_path):
    import tensorflow as tf

    path = f"{_ram_dir(tmp_path)}/run.yaml"
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("model:\n  preset: tiny\ntrain:\n  steps: 12\n")
    config = load_config(path, ["train.batch_size=4"])
    assert config.train.steps == 12 and config.train.batch_size == 4
    assert config.model.hidden_size == 128
    with pytest.raises(ConfigError, match=f"config file {path}x does not exist"):
        load_config(path + "x")


def test_saved_config_round_trips_on_a_non_local_filesystem(tmp_path):
    import tensorflow as tf

    directory = _ram_dir(tmp_path)
    config = config_from_dict({"model": {"preset": "tiny"}, "train": {"steps": 7}})
    save_config(config, f"{directory}/config.yaml")
    assert read_saved_config(f"{directory}/config.yaml") == config
    assert tf.io.gfile.listdir(directory) == ["config.yaml"]  # no temporary file left


def test_a_failed_save_keeps_the_earlier_config(tmp_path, monkeypatch):
    import tensorflow as tf

    path = str(tmp_path / "config.yaml")
    first = config_from_dict({"train": {"steps": 7}})
    save_config(first, path)

    def no_rename(*args, **kwargs):  # the write of the new file succeeded, its rename fails
        raise tf.errors.PermissionDeniedError(None, None, "rename refused")

    monkeypatch.setattr(tf.io.gfile, "rename", no_rename)
    with pytest.raises(tf.errors.PermissionDeniedError):
        save_config(config_from_dict({"train": {"steps": 8}}), path)
    assert read_saved_config(path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


@pytest.mark.parametrize("content, problem", [
    (b"", "is empty"),
    (b"# only a comment\n", "is empty"),
    (b"model: [unclosed\n", "is not valid YAML: line 2, column 1"),
    (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
    (b"- 1\n- 2\n", "the top level is not a mapping"),
    (b"model:\n  hidden: 3\nobjective: {}\ndata: {}\ntrain: {}\n", "unknown field(s) ['hidden']"),
    (b"model:\n  num_layers: 2\nobjective:\n  kind: electra\n", "has no data, train section"),
])
def test_a_damaged_saved_config_says_how_to_recover(tmp_path, content, problem):
    path = tmp_path / "run" / "config.yaml"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        read_saved_config(str(path))
    message = str(error.value)
    assert "\n" not in message and str(path) in message and problem in message, message
    assert "rerun the `electra-tf pretrain` command" in message
    assert f"move {path.parent} away" in message


@pytest.mark.parametrize("content", ["", "\n\n", "# model:\n#   preset: tiny\n", "---\n"])
def test_an_empty_config_file_is_an_error_not_the_defaults(tmp_path, content):
    path = tmp_path / "run.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=f"config file {path} is empty .*see configs/"):
        load_config(path, ["train.steps=5"])


def test_a_config_without_train_steps_says_which_default_it_uses(tmp_path, caplog):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  seq_length: 64\n")
    with caplog.at_level("WARNING", logger="electra_tf.config"):
        config = load_config(path)
    assert config.train.steps == 1_000_000
    assert f"{path} does not set train.steps: the run uses the default, 1000000 steps" \
        in caplog.text
    assert f"{path} sets no model section: the run uses the default model (12 layers" \
        in caplog.text


@pytest.mark.parametrize("content, overrides", [
    ("model:\n  preset: tiny\ntrain:\n  steps: 10\n", []),
    ("model:\n  preset: tiny\n", ["train.steps=10"]),
])
def test_a_config_that_sets_steps_and_model_logs_no_default(tmp_path, caplog, content,
                                                              overrides):
    path = tmp_path / "run.yaml"
    path.write_text(content)
    with caplog.at_level("WARNING", logger="electra_tf.config"):
        assert load_config(path, overrides).train.steps == 10
    assert "default" not in caplog.text


def test_a_config_path_that_is_a_directory_says_so(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a directory; give the path "
                                          "of a YAML config file, e.g. configs/quickstart.yaml"):
        load_config(tmp_path)
    directory = _ram_dir(tmp_path)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(directory)
