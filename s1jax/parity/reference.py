"""Greedy s1 budget forcing written the way the s1 evaluation code runs it, independent of s1jax's engine.

simplescaling's lm-evaluation-harness (``vllm_causallms.py``, budget-forcing branch) and the s1 README loop make one
generate call per thinking segment: generate until a stop (``<|im_start|>``, the answer stop or EOS) or the remaining
budget; drop the stop; if the stop is to be ignored append ``ignore_str`` ("Wait") and call again with
``min_tokens=1``; else append ``<|im_start|>answer``; at the budget append ``"\\n<|im_start|>answer\\nFinal
Answer:"``; then generate the answer. Every call starts from the whole context (vLLM re-reads it from its prefix
cache), so no cache is ever rewound here: that is the point of a reference for the jitted engine, which rewinds.

The model is any ``segment`` callable (``s1jax.parity.torch_reference`` provides the PyTorch one), so the loop itself
is plain Python over token ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Segment", "budget_forcing_reference"]

# segment(context ids, stop sequences, max new tokens, min_tokens, banned-at-start ids) ->
#   (generated ids, the stop that ended it or None, per generated token: {token: logit} of the reference's top-k)
Segment = Callable[[list[int], Sequence[Sequence[int]], int, int, set[int]],
                   tuple[list[int], "tuple[int, ...] | None", list[dict[int, float]]]]


def budget_forcing_reference(segment: Segment, tok: Any, prompt_ids: Sequence[int], budget: Any) -> dict[str, Any]:
    """s1 budget forcing at the token level (greedy). Returns ``token_ids`` (everything after the prompt, as
    ``s1jax.generate`` reports them), ``thinking_tokens``, ``num_ignored``, ``hit_max_budget`` and ``top``: the
    reference's top logits at each output position (``{}`` at forced positions)."""
    enc = tok.encode
    eos = [(int(e),) for e in tok.eos_token_ids]
    answer_stops = ([tuple(enc(budget.answer_stop))] if budget.answer_stop else []) + eos
    think_stops = [tuple(enc(budget.stop_thinking))] + answer_stops
    singles = {s[0] for s in think_stops if len(s) == 1}
    ignore_ids = enc(budget.ignore_str) if budget.ignore_str else []
    cap = math.inf if budget.max_thinking_tokens is None else budget.max_thinking_tokens
    ctx = list(prompt_ids)
    out: list[int] = []
    top: list[dict[int, float]] = []
    thinking = 0
    ignored, min_tokens, hit_max = 0, 0, False

    def keep(ids: Sequence[int], tops: Sequence[dict[int, float]] | None = None) -> None:
        ctx.extend(ids)
        out.extend(ids)
        top.extend(tops if tops is not None else [{}] * len(ids))

    while True:  # one generate call per thinking segment: until a stop or the remaining budget
        remaining = cap - thinking
        limit = int(min(remaining, 1 << 30))
        gen, stopped, tops = segment(ctx, think_stops, limit, min_tokens, singles) if limit > 0 else ([], None, [])
        if stopped is None:  # finish_reason == "length": the budget is spent
            keep(gen, tops)
            thinking += len(gen)
            ends_nl = thinking > 0 and tok.decode([out[-1]]).endswith("\n")
            forced = ([] if ends_nl else enc("\n")) + enc(
                budget.thinking_end + ("\n" + budget.final_answer_str if budget.final_answer_str else ""))
            hit_max = True
            break
        n = len(gen) - len(stopped)  # drop the stop
        keep(gen[:n], tops[:n])
        thinking += n
        if ignored < budget.num_ignore or thinking < budget.min_thinking_tokens:
            ignored += 1
            wait = ignore_ids[: int(min(cap - thinking, len(ignore_ids)))]
            keep(wait)
            thinking += len(wait)
            min_tokens = 1
            continue
        forced = enc(budget.thinking_end)
        break
    think_len = len(out)
    keep(forced)
    gen, _, tops = segment(ctx, answer_stops, budget.max_answer_tokens, 0, set())
    keep(gen, tops)
    return dict(token_ids=out, thinking_tokens=think_len, num_ignored=ignored, hit_max_budget=hit_max, top=top)
