"""Fine-tuning pretrained ELECTRA encoders: classification, regression and tagging.

    electra-tf finetune --config configs/finetune/sst2.yaml [--set task.epochs=2]
    electra-tf evaluate --run-dir runs/sst2 [--split validation]
    electra-tf predict  --run-dir runs/sst2 --input texts.jsonl [--output preds.jsonl]

Model and training: config.py (the run config and its derivations), model.py (encoder + HF
heads), init.py (where the encoder comes from), layerwise.py (learning-rate decay by depth),
losses.py, task.py (`FinetuneTask`, a Task of the one training loop), setup.py (spec -> task),
commands.py (CLI), export.py (SavedModel), hf.py (HuggingFace directories).
Data: data_config.py, sources.py, files.py, tfds_tasks.py, wordnet_tasks.py, labels.py,
features.py, metrics.py.
"""
