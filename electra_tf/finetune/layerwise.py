"""Layer-wise learning-rate decay: lower layers of the encoder learn more slowly.

Each variable's learning rate is the schedule's times decay^(depth from the top), where the
task head is the top (depth 0, factor 1), encoder layer i of L is at depth L - i (the top layer,
i = L - 1, gets decay^1) and the embeddings with `embeddings_project` are deepest, L + 1.

The authors' code (`model/optimization.py`, `_get_layer_lrs`) numbers the embeddings 0, layer i
as i + 1 and the head L + 2, and uses decay^(L + 2 - number): no variable has number L + 1, so
every encoder variable gets one extra factor of decay (the top layer decay^2, the embeddings
decay^(L + 2)). `off_by_one=True` (`task.lr_decay_top_off_by_one`) reproduces that; the default
follows the formula.
"""

from __future__ import annotations

import re

_LAYER = re.compile(r"^electra/encoder/layer_(\d+)/")


def depth_from_top(name: str, num_layers: int, off_by_one: bool = False) -> int:
    """The depth of the variable named `name` (FinetuneModel.model_variables' names)."""
    extra = 1 if off_by_one else 0
    match = _LAYER.match(name)
    if match:
        return num_layers - int(match.group(1)) + extra
    if name.startswith(("electra/embeddings/", "electra/embeddings_project/")):
        return num_layers + 1 + extra
    return 0  # the task head


def layerwise_multipliers(model, decay: float, off_by_one: bool = False) -> list[float]:
    """One learning-rate factor per variable of `model.trainable_variables`, in that order."""
    num_layers = len(model.encoder.layers)
    by_id = {id(v): name for name, v in model.model_variables().items()}
    factors = []
    for variable in model.trainable_variables:
        if id(variable) not in by_id:
            raise ValueError(f"variable {variable.path} has no stable name; every trainable "
                             "variable must be in FinetuneModel.model_variables()")
        factors.append(float(decay) ** depth_from_top(by_id[id(variable)], num_layers,
                                                      off_by_one))
    return factors
