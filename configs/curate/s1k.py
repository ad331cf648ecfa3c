"""The s1K recipe on the full 59K pool (s1 paper, Section 2): hub pool, 8-gram decontamination against AIME24 /
MATH500 / GPQA Diamond, quality rules, Qwen2.5-7B/32B-Instruct difficulty filter, Algorithm 1 to N=1000.

Difficulty uses the pool's precomputed grade columns when present; otherwise set
``--config.difficulty.models`` model_path entries to local Qwen2.5-7B/32B-Instruct checkpoints (run through
s1jax.generate and graded by s1jax.eval.grading). Trace lengths are Qwen tokens when ``tokens.tokenizer_path`` is
set (the 5,600-token MATH preselect threshold assumes it); without it they are whitespace words.
"""

import os

from s1jax.curation.pipeline import default_config


def get_config():
    cfg = default_config()
    cfg.pool.source = "simplescaling/data_ablation_full59K"
    cfg.pool.split = "train"
    cfg.decontam.eval_sets = ["aime24", "math500", "gpqa_diamond"]
    cfg.decontam.data_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data", "eval")
    cfg.tokens.tokenizer_path = ""  # e.g. a Qwen2.5 tokenizer dir / tokenizer.json for paper-exact token counts
    cfg.diversity.num_select = 1000
    cfg.diversity.seed = 0
    cfg.output.dir = "runs/curate/s1k"
    cfg.output.name = "s1k_curated"
    return cfg
