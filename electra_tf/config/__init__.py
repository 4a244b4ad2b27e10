"""Run configuration: typed dataclasses (`schema.py`), loaded from YAML and overridable from the
command line (`loading.py`)."""

from electra_tf.config.loading import (
    config_from_dict,
    load_config,
    parse_override,
    read_saved_config,
    save_config,
)
from electra_tf.config.schema import (
    MODEL_PRESETS,
    ConfigError,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
    model_preset,
)

__all__ = ["MODEL_PRESETS", "ConfigError", "DataConfig", "ModelConfig", "ObjectiveConfig",
           "RunConfig", "TrainConfig", "config_from_dict", "load_config", "model_preset",
           "parse_override", "read_saved_config", "save_config"]
