"""The vocabulary errors' advice reads on its own: it names the special tokens it asks for."""

import pytest

from electra_tf.data import VocabError
from electra_tf.data.tokenization import read_vocab


@pytest.mark.parametrize("content", [None, "", "[PAD]\n[UNK]\nthe\n"])
def test_vocab_errors_name_the_special_tokens_they_ask_for(tmp_path, content):
    path = tmp_path / "vocab.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(VocabError) as error:
        read_vocab(str(path))
    message = str(error.value)
    assert "has them" not in message  # "them" had nothing to refer to (missing or empty file)
    assert "give a BERT vocab.txt that has the special tokens [PAD] [UNK] [CLS] [SEP] [MASK]" \
        in message
