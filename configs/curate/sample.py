"""Offline sample run: a deterministic synthetic 600-row pool in the 59K schema with planted defects and rows
copied from AIME24/MATH500 (from the shipped data/eval), keyword MSC domains, N=100.

``s1jax curate --config=configs/curate/sample.py`` needs no hub and no model; docs/curation.md shows its report.
"""

import os

from s1jax.curation.pipeline import default_config

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def get_config():
    cfg = default_config()
    cfg.pool.source = "synthetic"
    cfg.pool.synthetic_rows = 600
    cfg.pool.synthetic_seed = 0
    cfg.pool.synthetic_contaminate = 3
    # GPQA Diamond is gated on the hub and not shipped: the offline sample decontaminates against the two local
    # sets only (data/eval), never touching the network.
    cfg.decontam.eval_sets = ["aime24", "math500"]
    cfg.decontam.data_dir = os.path.join(_REPO, "data", "eval")
    cfg.decontam.skip_missing = True
    cfg.decontam.use_benchmarks = False
    # Whitespace words, not Qwen tokens: the MATH threshold is scaled to the synthetic traces.
    cfg.diversity.preselect.rules = [
        {"source_contains": ["aime", "gpqa"], "min_trace_tokens": 0},
        {"source_contains": ["openaimath"], "min_trace_tokens": 1500},
    ]
    cfg.diversity.num_select = 100
    cfg.diversity.seed = 0
    cfg.output.dir = "runs/curate/sample"
    cfg.output.name = "s1k_sample"
    return cfg
