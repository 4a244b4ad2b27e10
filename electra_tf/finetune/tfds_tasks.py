"""Fine-tuning examples from TensorFlow Datasets builders.

Any builder is read by name (``glue/sst2``, ``conll2003``, ``wikiann/en``, ...) with the
features named in the config (known builders have defaults: data_config.TFDS_DEFAULTS). Labels:

* a ``ClassLabel`` becomes its name (``positive``, ``B-PER``); ids outside the class list
  (GLUE's unlabeled test splits use -1) become the empty string, which `LabelSet` rejects at
  training and evaluation time with a message that the split is unlabeled;
* an integer feature becomes its decimal string, a string feature is used as is;
* regression targets are cast to float32.

Tagging: the words and the tags feature must have one entry per word. Real datasets always
do; a mismatch is an error raised while the data is read (`sources.data_errors` turns it into
a DataError) unless ``allow_unaligned`` is set, which cuts both to the shorter length. That
option exists for `tfds.testing.mock_data`, whose random sequences have unrelated lengths.
"""

from __future__ import annotations

import re

import tensorflow as tf

from electra_tf.data.errors import DataError
from electra_tf.data.sources import graph_only
from electra_tf.finetune.data_config import FinetuneDataConfig

# Marks the in-graph checks whose failure `sources.data_errors` reports as a DataError.
ERROR_MARKER = "[finetune data] "


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def builder(data: FinetuneDataConfig):
    """The TFDS builder of data.tfds_name; an unknown name or config is a DataError."""
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(data.tfds_name, data_dir=data.tfds_data_dir)
    except Exception as e:  # DatasetNotFoundError, unknown config or version, ...
        raise DataError(f"data.tfds_name={data.tfds_name!r} is not a TensorFlow Datasets "
                        f"dataset ({_first_line(e)}); check the name, config and version "
                        "(e.g. glue/sst2, conll2003, wikiann/en)") from None


def _feature(features, name: str, data: FinetuneDataConfig, field: str):
    if name not in features:
        raise DataError(f"TFDS {data.tfds_name!r} has no feature {name!r} (data.{field}); its "
                        f"features are {sorted(features.keys())}")
    return features[name]


def _class_names(feature) -> list[str] | None:
    """The names of a ClassLabel (or of a Sequence of them), else None."""
    import tensorflow_datasets as tfds

    inner = getattr(feature, "feature", feature)
    if isinstance(inner, tfds.features.ClassLabel):
        return list(inner.names)
    return None


def label_names(data: FinetuneDataConfig, kind: str) -> list[str] | None:
    """The label (or tag) names in the builder's metadata, or None if it has none."""
    if kind == "regression":
        return None
    features = builder(data).info.features
    field = "tags_field" if kind == "tagging" else "label_field"
    return _class_names(_feature(features, getattr(data, field), data, field))


def _to_names(values: tf.Tensor, names: list[str] | None) -> tf.Tensor:
    """ClassLabel ids -> names ("" outside the list); other features -> strings."""
    if names is not None:
        ids = tf.cast(values, tf.int32)
        inside = (ids >= 0) & (ids < len(names))
        return tf.where(inside, tf.gather(tf.constant(names), tf.where(inside, ids, 0)), "")
    if values.dtype == tf.string:
        return values
    return tf.strings.as_string(values)


def _split_exists(tfds_builder, split_name: str, data: FinetuneDataConfig, split: str) -> None:
    known = list(tfds_builder.info.splits.keys())
    base = re.split(r"[\[+]", split_name)[0]
    if known and base not in known:          # (mock data knows no split names: skip)
        raise DataError(f"TFDS {data.tfds_name!r} has no split {base!r} (the {split} split, "
                        f"data.{split}_split); its splits are {sorted(known)}")


def read_tfds(data: FinetuneDataConfig, split: str, kind: str) -> tuple[tf.data.Dataset, str]:
    """The raw examples of `split` (without example ids) and a description for messages."""
    import tensorflow_datasets as tfds

    tfds_builder = builder(data)
    features = tfds_builder.info.features
    split_name = data.split_name(split)
    _split_exists(tfds_builder, split_name, data, split)
    description = f"TFDS {data.tfds_name!r} split {split_name!r}"
    try:
        dataset = tfds_builder.as_dataset(split=split_name, shuffle_files=False,
                                          read_config=tfds.ReadConfig(shuffle_seed=0))
    except Exception as e:
        raise DataError(f"cannot read {description} from data dir {tfds_builder.data_dir}: "
                        f"{_first_line(e)}. Prepare it first (tfds build {data.tfds_name} "
                        "--data_dir=DIR, then set data.tfds_data_dir=DIR)") from None
    if kind == "tagging":
        return _tagging(dataset, features, data, description), description
    text_a = data.text_field
    text_b = data.text_pair_field
    label = data.label_field
    for name, field in ((text_a, "text_field"), (text_b, "text_pair_field"),
                        (label, "label_field")):
        if name:
            _feature(features, name, data, field)
    names = _class_names(features[label])

    @graph_only
    def convert(example):
        target = example[label]
        if kind == "regression":
            target = (tf.strings.to_number(target, tf.float32) if target.dtype == tf.string
                      else tf.cast(target, tf.float32))
        else:
            target = _to_names(target, names)
        return {"text_a": example[text_a],
                "text_b": example[text_b] if text_b else tf.constant(""),
                "label": target}

    return dataset.map(convert), description


def _tagging(dataset: tf.data.Dataset, features, data: FinetuneDataConfig,
             description: str) -> tf.data.Dataset:
    words_field, tags_field = data.words_field, data.tags_field
    # FinetuneDataConfig.resolved() sets both for a tagging task
    assert words_field is not None and tags_field is not None
    _feature(features, words_field, data, "words_field")
    names = _class_names(_feature(features, tags_field, data, "tags_field"))
    fix = ("every word needs one tag (data.allow_unaligned=true cuts both to the shorter, "
           "meant for tfds.testing.mock_data only)")
    allow = data.allow_unaligned

    @graph_only
    def convert(example):
        words = tf.reshape(example[words_field], [-1])
        tags = _to_names(tf.reshape(example[tags_field], [-1]), names)
        if allow:
            n = tf.minimum(tf.size(words), tf.size(tags))
            words, tags = words[:n], tags[:n]
        else:
            num_words, num_tags = tf.size(words), tf.size(tags)
            check = tf.debugging.Assert(tf.equal(num_words, num_tags), [
                f"{ERROR_MARKER}{description}: an example has", num_words,
                f"{words_field!r} but", num_tags, f"{tags_field!r}; {fix}"])
            with tf.control_dependencies([check]):
                words = tf.identity(words)
        return {"words": words, "tags": tags}

    return dataset.map(convert)
