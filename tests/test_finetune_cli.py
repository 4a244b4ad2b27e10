"""`electra-tf finetune / evaluate / predict` end to end on the synthetic context tasks (the label
depends on word order or on the neighbouring word, never on a token alone): both are learned to
>= 95% from random initialisation, through the CLI."""

import dataclasses
import json

import pytest
import tensorflow as tf
import yaml

from electra_tf.cli import main
from electra_tf.data.tokenization import SPECIAL_TOKENS
from electra_tf.finetune.inference import load_finetuned
from electra_tf.finetune.synthetic import SYNTHETIC_WORDS, write_synthetic_task

# Narrow and shallow: learns both tasks in a few hundred steps on a CPU.
MODEL = dict(preset="tiny", embedding_size=64, hidden_size=64, num_heads=2,
             intermediate_size=256, dropout=0.0, attention_dropout=0.0)


def write_config(root, kind, steps):
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(list(SPECIAL_TOKENS) + list(SYNTHETIC_WORDS)) + "\n")
    data = write_synthetic_task(kind, str(root / "data"), train=2000, validation=200, test=100)
    config = {
        "model": MODEL,
        # From random initialisation every layer must learn: no layer-wise decay here (its
        # factors are tested in test_finetune_lr_decay.py).
        "task": {"kind": kind, "init": "none", "vocab_file": str(vocab),
                 "layerwise_lr_decay": 1.0},
        "data": {**{k: v for k, v in dataclasses.asdict(data).items() if v is not None},
                 "seq_length": 20},
        "train": {"run_dir": str(root / "run"), "steps": steps, "learning_rate": 3e-4,
                  "warmup_steps": 30, "log_every": 100, "eval_every": 150,
                  "steps_per_execution": 10},
    }
    path = root / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module", params=["classification", "tagging"])
def trained(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(f"cli_{kind}")
    path = write_config(root, kind, steps=450 if kind == "classification" else 300)
    assert main(["finetune", "--config", str(path)]) == 0
    return kind, root


def test_learns_the_context_task(trained, capsys):
    kind, root = trained
    assert main(["evaluate", "--run-dir", str(root / "run")]) == 0
    values = json.loads((root / "run" / "eval_validation.json").read_text())
    metric = "accuracy" if kind == "classification" else "f1"
    assert values[metric] >= 0.95, values
    assert "validation" in capsys.readouterr().out


def test_test_split_predictions_are_written(trained):
    kind, root = trained
    lines = (root / "run" / "predictions_test.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == list(range(100))
    key = "label" if kind == "classification" else "tags"
    assert all(key in r for r in records)


def test_an_unlabelled_split_gets_predictions_and_no_score(trained, monkeypatch):
    """GLUE's test splits have no labels: `finetune` still writes their predictions."""
    kind, root = trained
    run = load_finetuned(str(root / "run"))
    metrics, records = run.evaluate_and_predict("test")
    key = "tags" if kind == "tagging" else "label"
    blank = run.task.examples("test").map(lambda e: {**e, key: tf.fill(tf.shape(e[key]), "")})
    monkeypatch.setattr(run.task, "examples", lambda split: blank)
    no_metrics, unlabelled = run.evaluate_and_predict("test")
    assert metrics["loss"] > 0 and no_metrics == {}
    assert unlabelled == records and len(records) == 100


def test_predict_jsonl(trained, tmp_path):
    kind, root = trained
    source = tmp_path / "in.jsonl"
    if kind == "classification":
        rows = [{"text": "cat not dog good sat"}, {"text": "good dog not sat"}]
        expected = [{"label": "1"}, {"label": "0"}]
    else:
        rows = [{"words": ["the", "cat", "a", "dog", "ran"]}, {"text": "dog the man"}]
        expected = [{"tags": ["O", "B-X", "O", "B-Y", "O"]}, {"tags": ["O", "O", "B-X"]}]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--run-dir", str(root / "run"), "--input", str(source),
                 "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record, want in zip(records, expected, strict=True):
        for key, value in want.items():
            assert record[key] == value, record
    if kind == "classification":
        assert set(records[0]["probabilities"]) == {"0", "1"}


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert main(["finetune", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "does not exist" in capsys.readouterr().err
    path = write_config(tmp_path, "classification", steps=5)
    config = yaml.safe_load(path.read_text())
    config["task"]["init"] = str(tmp_path / "no_such_checkpoint")
    path.write_text(yaml.safe_dump(config))
    assert main(["finetune", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "task.init" in err and "Traceback" not in err
    assert main(["evaluate", "--run-dir", str(tmp_path / "nothing")]) == 1
    assert "not a fine-tuning run" in capsys.readouterr().err


def test_compare_random_runs_the_control_and_prints_both_scores(trained, tmp_path, capsys):
    kind, root = trained
    metric = "accuracy" if kind == "classification" else "f1"
    path = write_config(tmp_path, kind, steps=20)
    config = yaml.safe_load(path.read_text())
    config["task"] = {"kind": kind, "init": str(root / "run"), "layerwise_lr_decay": 1.0}
    config["model"] = {"dropout": 0.0}
    config["train"]["eval_every"] = 20
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["finetune", "--config", str(path), "--compare-random"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("Fine-tuned on"):].splitlines()
    assert f"validation {metric}" in table[1] and f"test {metric}" in table[1]
    scores = {line.split()[0]: [float(v) for v in line.split()[-2:]] for line in table[2:4]}
    # The init's encoder already solves the task (a new head learns it in 20 steps); 20 steps
    # from random init do not.
    assert scores["pretrained"][0] >= scores["random"][0] + 20, out
    # Each row is that run's best checkpoint as `evaluate` scores it, split by split.
    for name, run in (("pretrained", "run"), ("random", "run_random_init")):
        for column, split in enumerate(("validation", "test")):
            assert main(["evaluate", "--run-dir", str(tmp_path / run), "--split", split]) == 0
            values = json.loads((tmp_path / run / f"eval_{split}.json").read_text())
            assert scores[name][column] == pytest.approx(100 * values[metric], abs=0.051), name
    control = yaml.safe_load((tmp_path / "run_random_init" / "config.yaml").read_text())
    saved = yaml.safe_load((root / "run" / "config.yaml").read_text())
    assert control["task"]["init"] == "none"
    with open(control["task"]["vocab_file"]) as a, open(saved["task"]["vocab_file"]) as b:
        assert a.read() == b.read()
    assert {k: v for k, v in control["model"].items() if k != "dropout"} == \
        {k: v for k, v in saved["model"].items() if k != "dropout"}
    assert control["train"]["seed"] == saved["train"]["seed"]

    config["task"]["init"] = "none"
    config["task"]["vocab_file"] = str(tmp_path / "vocab.txt")
    path.write_text(yaml.safe_dump(config))
    assert main(["finetune", "--config", str(path), "--compare-random"]) == 1
    assert "already starts from a random initialisation" in capsys.readouterr().err
