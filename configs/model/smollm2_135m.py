"""Architecture of `smollm2_135m` (ModelConfig fields). Load real weights with a CLI's --config.model.path instead."""

from s1jax.model.presets import model_config_dict


def get_config():
    return model_config_dict("smollm2_135m")
