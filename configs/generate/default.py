"""Budget-forced generation with a random `tiny` model by default; point it at real weights with
``--config.model.path=DIR_OR_GGUF``.

    s1jax generate --config=configs/generate/default.py --config.model.path=PATH \
        --config.prompt="How many r in raspberry?" --config.budget.max_thinking_tokens=2000 --config.budget.num_ignore=1
"""

from s1jax.cli.generate import default_config


def get_config():
    return default_config()
