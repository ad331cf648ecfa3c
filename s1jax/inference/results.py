"""``GenerationResult`` and its construction from one finished engine row (host side)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from s1jax.inference import budget as bf
from s1jax.inference.budget import Budget

__all__ = ["GenerationResult", "HOST_FIELDS", "to_result"]

FINISH_REASONS = {bf.FIN_STOP: "stop", bf.FIN_LENGTH: "length", bf.FIN_CACHE_FULL: "cache_full"}
# Stats fields the host reads for a finished row (besides its output tokens).
HOST_FIELDS = ("out_len", "think_len", "finish", "stop_len", "answer_count", "n_ignored", "hit_max")


@dataclasses.dataclass
class GenerationResult:
    prompt: str
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    num_ignored: int
    hit_max_budget: bool
    token_ids: list[int]  # every token after the prompt (which ends with thinking_start)
    finish_reason: str = "stop"  # "stop" (answer_stop/EOS), "length" (max_answer_tokens), "cache_full"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def to_result(tok: Any, prompt: str, budget: Budget, out: np.ndarray, stats: dict[str, Any]) -> GenerationResult:
    """``out``: the row's output buffer; ``stats``: its ``HOST_FIELDS`` as host scalars."""
    ids = [int(t) for t in out[: int(stats["out_len"])]]
    think_len = int(stats["think_len"])
    if think_len < 0:
        think_len = len(ids)
    finish = FINISH_REASONS.get(int(stats["finish"]), "stop")
    stop_len = int(stats["stop_len"]) if finish == "stop" else 0
    answer_text = tok.decode(ids[think_len: len(ids) - stop_len])
    cut = answer_text.find(budget.thinking_end)
    if cut >= 0:
        answer_text = answer_text[cut + len(budget.thinking_end):]
    return GenerationResult(
        prompt=prompt,
        thinking=tok.decode(ids[:think_len]),
        answer=answer_text,
        thinking_tokens=think_len,
        answer_tokens=max(int(stats["answer_count"]) - stop_len, 0),
        num_ignored=int(stats["n_ignored"]),
        hit_max_budget=bool(stats["hit_max"]),
        token_ids=ids,
        finish_reason=finish,
    )
