"""ELECTRA networks: shared embeddings, post-LN encoder, generator and discriminator."""

from electra_tf.models.layers import Embeddings, Encoder, TransformerLayer, gelu
from electra_tf.models.networks import Discriminator, ElectraNetworks, Generator, build_networks

__all__ = ["Discriminator", "ElectraNetworks", "Embeddings", "Encoder", "Generator",
           "TransformerLayer", "build_networks", "gelu"]
