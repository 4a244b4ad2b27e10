"""Export of a fine-tuned run: a raw-text SavedModel, or a HuggingFace directory.

    export_finetuned("runs/sst2", "export/sst2")                       # SavedModel
    export_finetuned("runs/sst2", "export/sst2-hf", fmt="huggingface")

The SavedModel is self-contained: tokenization, pair packing and truncation run in the graph
exactly as in training (features.py), with the run's vocabulary and label names. It loads with
only TensorFlow and TensorFlow Text:

    import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    model = tf.saved_model.load("export/sst2")
    out = model.signatures["serving_default"](text=tf.constant(["a fine film"]))

Signatures (B = batch, L = data.seq_length, N = labels, W = words):

  classification / regression
    serving_default(text: string [B]);  serving_pair(text: string [B], text_pair: string [B])
      classification: probabilities float32 [B, N], label string [B] (the most probable
                      label's name), label_id int32 [B], label_names string [B, N]
      regression:     score float32 [B]
  tagging
    serving_default(text: string [B])   per-token tags of raw text:
      tokens string [B, L] (word pieces, "" at padding), tags string [B, L] ("" at [CLS],
      [SEP] and padding), probabilities float32 [B, L], is_word_start bool [B, L]
    tag_words(words: string [B, W])     pre-split words, "" pads a row:
      tags string [B, W] (a word truncated away is tagged "O"; "" at padding),
      probabilities float32 [B, W], num_words int32 [B]

The module also holds `label_names` (string [N]; regression: ["score"]), `seq_length`,
`model_variables` and `tokenizer`; `assets.extra/electra_tf.json` describes the export.
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.export.saved_model import _strings, graph_function

log = logging.getLogger(__name__)

FORMATS = ("saved_model", "huggingface")
METADATA_FILE = os.path.join("assets.extra", "electra_tf.json")


def _tf_variables(model) -> list[tf.Variable]:
    out = []
    for variable in model.weights:
        value = getattr(variable, "value", variable)
        if not isinstance(value, tf.Variable):
            raise TypeError(f"cannot export {variable.path}: not backed by a tf.Variable")
        out.append(value)
    return out


class FinetunedSavedModel(tf.Module):
    """The exported object; the Keras model is only captured while tracing."""

    def __init__(self, model, tokenizer, kind: str, label_names: list[str], seq_length: int):
        super().__init__(name="electra_finetuned")
        from electra_tf.finetune.features import _sequence_features, _tagging_features

        self.tokenizer = tokenizer
        self.model_variables = _tf_variables(model)
        self.seq_length = tf.Variable(seq_length, trainable=False, name="seq_length")
        self.label_names = tf.Variable(tf.constant(label_names), trainable=False,
                                       name="label_names")
        names = tf.constant(label_names)

        def logits_of(features):
            return model(features["input_ids"], features["input_mask"],
                         features["segment_ids"], training=False)

        def sequence_outputs(text, text_pair):
            batch = tf.shape(text)[0]
            features = _sequence_features(tokenizer, {"text_a": text, "text_b": text_pair},
                                          batch, seq_length)
            logits = logits_of(features)
            if kind == "regression":
                return {"score": logits[:, 0]}
            probabilities = tf.nn.softmax(logits, axis=-1)
            label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            return {"probabilities": probabilities, "label_id": label_id,
                    "label": tf.gather(names, label_id),
                    "label_names": tf.broadcast_to(names[None, :], tf.shape(probabilities))}

        if kind != "tagging":
            @graph_function(_strings("text"))
            def serve_text(text):
                return sequence_outputs(text, tf.fill(tf.shape(text), ""))

            @graph_function(_strings("text"), _strings("text_pair"))
            def serve_pair(text, text_pair):
                tf.debugging.assert_equal(tf.shape(text), tf.shape(text_pair), message=(
                    "text and text_pair must have the same batch size"))
                return sequence_outputs(text, text_pair)

            self.serve_text, self.serve_pair = serve_text, serve_pair
            return

        special = tokenizer.special

        def tag_tokens(ids, mask, logits):
            probabilities = tf.nn.softmax(logits, axis=-1)
            best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            real = (tf.equal(mask, 1) & tf.not_equal(ids, special.cls_id)
                    & tf.not_equal(ids, special.sep_id))
            return best, tf.reduce_max(probabilities, axis=-1), real

        @graph_function(_strings("text"))
        def serve_text(text):
            from electra_tf.data.packing import pack_segments

            packed = pack_segments([tokenizer.tokenize(text)], seq_length, special)
            ids = tf.cast(packed["input_ids"], tf.int32)
            mask = tf.cast(packed["input_mask"], tf.int32)
            features = {"input_ids": ids, "input_mask": mask,
                        "segment_ids": tf.cast(packed["segment_ids"], tf.int32)}
            best, confidence, real = tag_tokens(ids, mask, logits_of(features))
            tokens = tf.where(tf.equal(mask, 1), tokenizer.id_to_token(ids), "")
            return {"tokens": tokens, "tags": tf.where(real, tf.gather(names, best), ""),
                    "probabilities": tf.where(real, confidence, 0.0),
                    "is_word_start": real & ~tf.strings.regex_full_match(tokens, "##.*")}

        @graph_function(tf.TensorSpec([None, None], tf.string, name="words"))
        def tag_words(words):
            ragged = tf.RaggedTensor.from_tensor(words, padding="")
            batch = tf.shape(words)[0]
            features = _tagging_features(
                tokenizer, {"words": ragged, "tags": ragged,
                            "example_weight": tf.ones([batch], tf.float32)},
                None, batch, seq_length)
            ids, mask = features["input_ids"], features["input_mask"]
            best, confidence, _ = tag_tokens(ids, mask, logits_of(features))
            at = features["word_index"] >= 0
            rows = tf.cast(tf.where(at)[:, 0], tf.int32)
            index = tf.stack([rows, tf.boolean_mask(features["word_index"], at)], axis=1)
            width = tf.shape(words)[1]
            in_row = tf.range(width)[None, :] < features["num_words"][:, None]
            tags = tf.tensor_scatter_nd_update(
                tf.where(in_row, "O", ""), index, tf.gather(names, tf.boolean_mask(best, at)))
            scores = tf.tensor_scatter_nd_update(tf.zeros(tf.shape(words), tf.float32), index,
                                                 tf.boolean_mask(confidence, at))
            return {"tags": tags, "probabilities": scores, "num_words": features["num_words"]}

        self.serve_text, self.tag_words = serve_text, tag_words

    def signatures(self) -> dict:
        if hasattr(self, "tag_words"):
            return {"serving_default": self.serve_text, "tag_words": self.tag_words}
        return {"serving_default": self.serve_text, "serving_pair": self.serve_pair}


def export_saved_model(run, out_dir: str) -> str:
    """Writes the SavedModel of a `FinetunedRun` (inference.load_finetuned) to `out_dir`."""
    task = run.task
    names = list(task.labels.names) if task.labels is not None else ["score"]
    module = FinetunedSavedModel(run.model, task.tokenizer, task.kind, names,
                                 run.config.data.seq_length)
    signatures = module.signatures()
    tf.saved_model.save(module, out_dir, signatures=signatures)
    info = {"kind": task.kind, "label_names": names, "seq_length": run.config.data.seq_length,
            "checkpoint": run.checkpoint,
            "signatures": {name: [spec.name for spec in fn.input_signature]
                           for name, fn in signatures.items()},
            "load": "import tensorflow as tf, tensorflow_text; tf.saved_model.load(path)"}
    tf.io.gfile.makedirs(os.path.join(out_dir, "assets.extra"))
    with tf.io.gfile.GFile(os.path.join(out_dir, METADATA_FILE), "w") as f:
        f.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return out_dir


def export_finetuned(run_dir: str, out: str, fmt: str = "saved_model",
                     which: str = "best") -> str:
    """Exports a fine-tuned run (its best checkpoint, or the latest) as `fmt` to `out`."""
    from electra_tf.finetune.hf import export_hf_task_model
    from electra_tf.finetune.inference import load_finetuned

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    if tf.io.gfile.exists(out) and (not tf.io.gfile.isdir(out) or tf.io.gfile.listdir(out)):
        raise ConfigError(f"--out {out} exists and is not an empty directory; choose a new one")
    run = load_finetuned(run_dir, which)
    if fmt == "saved_model":
        export_saved_model(run, out)
    else:
        task = run.task
        names = list(task.labels.names) if task.labels is not None else ["score"]
        export_hf_task_model(run.model, run.config.model, task.kind, names, out,
                             task.tokenizer.vocab_path if run.config.task.tokenizer ==
                             "wordpiece" else None, lower_case=bool(run.config.task.lower_case),
                             strip_accents=run.config.task.strip_accents)
    log.info("exported %s (%s) to %s", run.checkpoint, fmt, out)
    return out


def is_finetune_run(run_dir: str) -> bool:
    """True for a fine-tuning run directory (its config.yaml has a task section)."""
    import yaml

    path = os.path.join(run_dir, "config.yaml")
    if not tf.io.gfile.exists(path):
        return False
    try:
        with tf.io.gfile.GFile(path) as f:
            saved = yaml.safe_load(f.read())
    except (yaml.YAMLError, UnicodeDecodeError):
        return False  # damaged: the pretraining reader reports it, with the fix
    return isinstance(saved, dict) and "task" in saved
