"""``s1jax compare A B``: two runs of one benchmark item by item (s1jax eval dirs or lm-eval samples files).

    s1jax compare runs/eval/aime24_nofigures/<run> path/to/samples_aime24_nofigures_<date>.jsonl
    s1jax compare --config.a=RUN_A --config.b=RUN_B [--config.output_dir=DIR] [--config.b_budget=8192]

a / b: an s1jax eval output directory (its results.jsonl) or an lm-eval samples_<task>_<date>.jsonl (e.g. s1's
PyTorch/vLLM run; one budget per file, read from a sibling results_*.json, else set a_budget / b_budget).
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        dict(
            a="",
            b="",
            a_label="",  # "" = the directory / file name
            b_label="",
            a_budget=0,  # budget of an lm-eval samples file (0 = from its results_*.json, else unknown)
            b_budget=0,
            method="budget_forcing",  # which method of an s1jax run to compare
            # tokenizer (HF dir, tokenizer.json, .gguf) to count thinking tokens in lm-eval files that lack tok_think@1
            tokenizer="",
            match="auto",  # "auto" (ids when both runs use the same ids, else problem text) | "id" | "text"
            bootstrap_samples=10000,  # resamples of the paired bootstrap CI
            confidence=0.95,
            seed=0,
            output_dir="",  # "" = runs/compare/<a>_vs_<b>: comparison.md, comparison.json, comparison.png
        )
    )
