"""GPQA Diamond (198 questions, choices shuffled with a fixed seed per item); s1-32B: 56.6 without, 59.6 with.

No local copy ships with the repo (gated dataset): set --config.data_path to a .jsonl/.parquet with the hub's
columns (Question, Correct Answer, Incorrect Answer 1..3), or leave it empty to load Idavidrein/gpqa from the hub.

    s1jax eval --config=configs/eval/gpqa.py --config.model.path=PATH [--config.gpqa_ask_letter=true]
"""

import os

from s1jax.config import load_config_file


def get_config():
    return load_config_file(os.path.join(os.path.dirname(__file__), "base.py") + ":gpqa")
