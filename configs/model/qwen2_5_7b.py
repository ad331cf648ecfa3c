"""Architecture of `qwen2_5_7b` (ModelConfig fields). Load real weights with a CLI's --config.model.path instead."""

from s1jax.model.presets import model_config_dict


def get_config():
    return model_config_dict("qwen2_5_7b")
