"""Export a trained run: a self-contained SavedModel, or HuggingFace `transformers` directories.

    export_run("runs/quickstart", "export/quickstart")                       # SavedModel
    export_run("runs/quickstart", "export/hf", fmt="huggingface", step=400)

The exporter lives in `electra_tf.export.exporter`; the SavedModel's signatures are described
in `electra_tf.export.saved_model`; `demo.run_demo` shows the exported discriminator spotting a
replaced word.
"""

from electra_tf.export.exporter import FORMATS, export_run, load_run
from electra_tf.training.run_tokenizer import load_run_tokenizer

__all__ = ["FORMATS", "export_run", "load_run", "load_run_tokenizer"]
