"""Loading a `RunConfig` from YAML, overriding fields from the command line, saving it.

Unknown keys and wrongly typed values are errors that name the file and the dotted field path.
Every file is read and written through `tf.io.gfile`, so configs can live on gs:// (TensorFlow
is imported only when a file is touched). `build_section`, `coerce` and `merge` build the
fine-tuning config (`finetune/config.py`) the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import types
import typing
import uuid
from typing import Any

import yaml

from electra_tf.config.schema import MODEL_PRESETS, ConfigError, RunConfig

log = logging.getLogger(__name__)


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Checks `value` against a dataclass field annotation; ints are accepted for floats."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, str | float):
            try:  # YAML reads 1e6 as a string, 1.0e6 as a float: accept whole numbers
                number = float(value)
            except ValueError:
                number = math.nan
            if number.is_integer():
                return int(number)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {annotation}")


def build_section(cls: type, data: Any, where: str) -> Any:
    """The dataclass `cls` from the mapping `data` (the config section `where`), every field
    checked against its annotation; unknown fields are a ConfigError naming them."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown and not where:
        raise ConfigError(f"unknown section(s) {unknown}; the sections are {sorted(names)}")
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known fields are {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        annotation = hints[name]
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            kwargs[name] = build_section(annotation, value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = coerce(value, annotation, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` with `update` laid over it, nested mappings merged key by key (a new dict)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str, sections: dict[str, type] | None = None,
                   example: str = "train.steps=100") -> dict[str, Any]:
    """Turns `train.steps=100` into {"train": {"steps": 100}}; the value is parsed as YAML.
    `sections` maps section names to their dataclasses (default: RunConfig's)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value "
                          f"(e.g. --set {example})")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {text!r}: the key must be section.field, e.g. "
                          f"{example.split('=')[0]}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({e})") from None
    section, name = parts
    sections = sections or typing.get_type_hints(RunConfig)
    if section not in sections:
        raise ConfigError(f"--set {text}: unknown section {section!r}; the sections are "
                          f"{sorted(sections)}")
    hints = typing.get_type_hints(sections[section])
    if name not in hints and not (section == "model" and name == "preset"):
        raise ConfigError(f"--set {text}: {section} has no field {name!r}; known fields are "
                          f"{sorted(hints)}")
    if name in hints:
        value = coerce(value, hints[name], f"--set {text}")
    return {section: {name: value}}


def config_from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Builds a validated RunConfig from nested dicts; `model.preset` selects reference sizes."""
    data = dict(data or {})
    for section, value in data.items():
        if value is not None and not isinstance(value, dict):
            field_line = "preset: small" if section == "model" else "field: value"
            raise ConfigError(f"{source}: section {section!r} must be a mapping of fields, got "
                              f"{value!r} (write it as `{section}:` followed by indented lines "
                              f"such as `  {field_line}`)")
    model = dict(data.get("model") or {})
    preset = model.pop("preset", None)
    if preset is not None:
        if preset not in MODEL_PRESETS:
            raise ConfigError(f"{source}: model.preset {preset!r} is unknown; choose one of "
                              f"{sorted(MODEL_PRESETS)}")
        model = {**MODEL_PRESETS[preset], **model}
    data["model"] = model
    try:
        return build_section(RunConfig, data, "").validate()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _read_text(path: str) -> str:
    """The UTF-8 text of a local or remote file; a ConfigError if it cannot be read."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            raw = f.read()
    except tf.errors.OpError as e:
        raise ConfigError(f"cannot read {path}: {e.message}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.start}): save the config as "
                          "UTF-8") from None


def _parse_yaml(path: str, text: str) -> Any:
    """The YAML document in `text`; a syntax error is a one-line ConfigError with its position."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        detail = problem if problem else " ".join(str(e).split())
        raise ConfigError(f"{path} is not valid YAML: {where}{detail}") from None


def read_config_file(path: str, *, sections: str = "model, objective, data, train",
                     example: str = "configs/quickstart.yaml",
                     empty: str | None = None) -> dict[str, Any]:
    """The top-level mapping of a YAML config file (local or remote), with one-line
    ConfigErrors naming the file. `sections` and `example` (a shipped config) go into the
    messages; `empty` (what to write instead) makes an empty file an error, else it reads as {}."""
    import tensorflow as tf

    examples = os.path.dirname(example) + "/"
    try:
        exists = tf.io.gfile.exists(path)
        directory = exists and tf.io.gfile.isdir(path)
        saved = directory and tf.io.gfile.exists(os.path.join(path, "config.yaml"))
    except tf.errors.OpError as e:
        raise ConfigError(f"cannot read config file {path}: {e.message}") from None
    if not exists:
        raise ConfigError(f"config file {path} does not exist; see {examples} for examples")
    if directory:
        hint = (f" (for the run in that directory, its saved config "
                f"{os.path.join(path, 'config.yaml')})" if saved else "")
        raise ConfigError(f"config file {path} is a directory; give the path of a YAML config "
                          f"file{hint}, e.g. {example}")
    data = _parse_yaml(path, _read_text(path))
    if data is None:
        if empty is None:
            return {}
        raise ConfigError(f"config file {path} is empty (no settings, only blank lines or "
                          f"comments); {empty}; see {examples} for examples")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with sections {sections}")
    return data


def _warn_about_defaults(data: dict[str, Any], config: RunConfig, source: str) -> None:
    """Says which defaults a config file leaves in charge of the run's length and size."""
    train, model = data.get("train") or {}, data.get("model") or {}
    if "steps" not in train:
        log.warning("%s does not set train.steps: the run uses the default, %d steps", source,
                    config.train.steps)
    if not model:
        m = config.model
        log.warning("%s sets no model section: the run uses the default model (%d layers, "
                    "hidden size %d); set model.preset (tiny, small, base, large) to choose",
                    source, m.num_layers, m.hidden_size)


def load_config(path: str | os.PathLike | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Loads a YAML run config (or the defaults when `path` is None) and applies overrides."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = os.fspath(path)
        # the defaults are a 1,000,000-step base-size run: never by accident
        data = read_config_file(source, empty="write at least the model and train sections, "
                                "e.g. `model: {preset: small}` and `train: {steps: 1000}`")
    for text in overrides:
        data = merge(data, parse_override(text))
    config = config_from_dict(data, source)
    if path is not None:
        _warn_about_defaults(data, config, source)
    return config


def save_config(config: RunConfig, path: str) -> None:
    """Writes the resolved config as YAML (through tf.io.gfile, so gs:// works), atomically: into
    a temporary file beside `path`, renamed over it once complete (a failed save leaves the
    earlier file as it was and removes the temporary one)."""
    import tensorflow as tf

    text = config.to_yaml()
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):  # only after a failure
            tf.io.gfile.remove(tmp)


def read_saved_config(path: str) -> RunConfig:
    """Reads the config a run saved in its directory (local or remote). A damaged, empty or
    invalid one is a ConfigError that names the file and how to recover."""
    run_dir = os.path.dirname(path) or "."
    fix = (f"it is the config {run_dir} was started with: delete it and rerun the "
           "`electra-tf pretrain` command that started the run (it saves the config again and "
           f"resumes from the checkpoints), or move {run_dir} away to start a new run there")
    try:
        data = _parse_yaml(path, _read_text(path))
        if data is None:
            raise ConfigError(f"{path} is empty")
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level is not a mapping of sections")
        missing = [f.name for f in dataclasses.fields(RunConfig) if f.name not in data]
        if missing:  # save_config writes every section: the file was cut short or edited
            raise ConfigError(f"{path} is incomplete: it has no {', '.join(missing)} "
                              "section(s)")
        return config_from_dict(data, path)
    except ConfigError as e:
        raise ConfigError(f"{e}; {fix}") from None
