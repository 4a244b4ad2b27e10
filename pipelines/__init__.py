"""Corpus preparation at scale on Apache Beam (locally, or on Google Cloud Dataflow).

Two jobs, both reading the corpus the run config's ``data`` section names (text files and globs,
local or gs://, in either layout):

    python -m pipelines.build_vocab --config ... --out vocab.txt
        word counts over the whole corpus (the in-graph tokenizer's normalisation), then the
        WordPiece vocabulary learned from them by electra_tf.data.vocab.learn_vocab
    python -m pipelines.prepare_pretraining_data --config ... --output DIR
        tokenized, packed ELECTRA examples in GZIP TFRecord shards + DIR/metadata.json, for
        ``data.source: tfrecord``

Modules: options.py (command line, runners, errors), documents.py (reading documents),
examples.py (tokenizing and packing), counting.py (word counts). Install with
``pip install -e ".[pipelines]"``.
"""
