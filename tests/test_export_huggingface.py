"""The HuggingFace format through `export_run`: transformers loads the step asked for."""

import os

import numpy as np
from export_run import VOCAB


def test_huggingface_format_loads_with_transformers(random_run, tmp_path):
    import transformers  # the test extra installs it

    from electra_tf.export import export_run
    config, networks, weights = random_run
    out = export_run(config.train.run_dir, str(tmp_path / "hf"), fmt="huggingface", step=3)
    model = transformers.ElectraForPreTraining.from_pretrained(os.path.join(out,
                                                                            "discriminator"))
    word = model.electra.embeddings.word_embeddings.weight.detach().numpy()
    index = [i for i, v in enumerate(networks.trainable_variables)
             if v is networks.embeddings.word_embeddings][0]
    np.testing.assert_allclose(word, weights[3][index], atol=1e-7)   # the step asked for
    assert np.abs(word - weights[7][index]).max() > 1e-3
    assert os.path.isfile(os.path.join(out, "generator", "model.safetensors"))
    with open(os.path.join(out, "discriminator", "vocab.txt"), encoding="utf-8") as f:
        assert f.read().split() == VOCAB
