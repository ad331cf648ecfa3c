"""Fixtures for the trainer tests: a tiny byte-level BPE tokenizer (< 512 ids, ChatML specials) trained on the s1K
fixture texts, and a directory with it + s1K-format rows, usable by ``configs/train/tiny.py:<dir>``.

Run ``python tests/train_fixtures.py DIR [N]`` to write such a directory for a manual CLI run.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from fixtures_s1k import s1k_fixture_rows  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def fixture_rows(n: int) -> list[dict[str, Any]]:
    return s1k_fixture_rows(n, "s1K")


def make_tiny_tokenizer(directory: str | pathlib.Path, vocab_size: int = 400) -> pathlib.Path:
    """Train a deterministic byte-level BPE on fixture texts; writes ``directory/tokenizer.json``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [QWEN_SYSTEM, "system user assistant think answer Answer:"]
    for r in fixture_rows(64):
        texts += [r["question"], "\n".join(r["thinking_trajectories"]), r["attempt"]]
    tok.train_from_iterator(texts * 4, trainer=trainer)
    path = directory / "tokenizer.json"
    tok.save(str(path))
    return path


def write_train_dir(directory: str | pathlib.Path, n: int = 32) -> pathlib.Path:
    """``directory/{tokenizer.json, train.jsonl}``: what ``configs/train/tiny.py:<directory>`` expects."""
    directory = pathlib.Path(directory)
    make_tiny_tokenizer(directory)
    with (directory / "train.jsonl").open("w", encoding="utf-8") as f:
        for r in fixture_rows(n):
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return directory


def tiny_config(data_dir: str | pathlib.Path, out_dir: str | pathlib.Path, **train_overrides: Any):
    """The ``configs/train/tiny.py`` config pointed at ``data_dir``, writing to ``out_dir``, quiet."""
    from s1jax.config import load_config_file

    root = pathlib.Path(__file__).resolve().parents[1]
    cfg = load_config_file(f"{root / 'configs/train/tiny.py'}:{data_dir}")
    cfg.train.output_dir = str(out_dir)
    cfg.train.progress_bar = False
    cfg.train.tensorboard = False
    for k, v in train_overrides.items():
        group, _, field = k.rpartition("__")
        node = cfg[group] if group else cfg.train
        node[field] = v
    return cfg


if __name__ == "__main__":
    out = write_train_dir(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32)
    print(f"wrote {out}/tokenizer.json and {out}/train.jsonl")
