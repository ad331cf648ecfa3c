"""``s1jax convert``: HF <-> s1jax native checkpoints, GGUF -> HF (or s1jax).

    s1jax convert --config=configs/convert.py --config.input=PATH --config.output=DIR [--config.output_format=hf]

input: a HF directory (config.json + safetensors), a .gguf file, or an s1jax checkpoint (s1jax_model.json; a trainer
checkpoint root loads its latest step). dtype: "" keeps the source's dtype (HF config torch_dtype, the s1jax stored
dtype, float32 for GGUF), else "float32" / "bfloat16" / "float16". tokenizer: "" copies the tokenizer found with the
input (HF files; for GGUF the embedded tokenizer is exported with transformers when installed); "none" copies none.
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        dict(
            input="",
            output="",
            output_format="hf",  # "hf" | "s1jax"
            dtype="",
            tokenizer="",
            max_shard_gb=5.0,  # HF safetensors shard size
            overwrite=False,
        )
    )
