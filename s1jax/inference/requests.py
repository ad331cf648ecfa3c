"""What a generation call asks for, checked and laid out for the engine (host side, shared by generate and sweep).

Validation happens here, before anything is compiled or run: one clear line naming the problem and the fix.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from s1jax.inference import budget as bf
from s1jax.inference.budget import Budget
from s1jax.inference.engine import bucket, round_up
from s1jax.inference.mesh import per_device_bytes

__all__ = ["Workload", "check_questions", "check_budgets", "render_prompts", "nl_table", "build_workload",
           "slot_count"]

PROMPT_BUCKET_MIN = 32  # prompts are padded to a power of two >= this (one refill program per bucket)
CACHE_MULTIPLE = 128  # default cache lengths are rounded up to this


@dataclasses.dataclass
class Workload:
    """Tokenized questions and their budgets, sized for one engine run."""

    texts: list[str]  # rendered prompts (what GenerationResult.prompt reports)
    ids: list[list[int]]  # their token ids
    budgets: list[Budget]
    limits: dict[str, np.ndarray]  # max_think / min_think / num_ignore / max_answer, each [n] int64
    prompt_len: int  # P: prompt bucket of the refill program
    max_len: int  # S: cache slots per row
    slots: int  # B: row slots decoded together


_NL_CACHE: "weakref.WeakKeyDictionary[Any, dict[int, jax.Array]]" = weakref.WeakKeyDictionary()


def nl_table(tok: Any, size: int) -> jax.Array:
    """[size] bool per tokenizer (cached): the id decodes to text ending with a newline."""
    per_tok = _NL_CACHE.setdefault(tok, {})
    if size not in per_tok:
        per_tok[size] = jax.numpy.asarray(bf.newline_table(tok, size))
    return per_tok[size]


def check_questions(questions: Sequence[str]) -> list[str]:
    if isinstance(questions, str):
        raise ValueError("questions must be a list of strings, not a single string")
    questions = list(questions)
    if not questions:
        raise ValueError("questions is empty: nothing to generate")
    for q in questions:
        if not isinstance(q, str):
            raise ValueError(f"every question must be a str, got {type(q).__name__}")
    return questions


def check_budgets(budget: Budget | Sequence[Budget], n: int) -> list[Budget]:
    if isinstance(budget, Budget):
        return [budget] * n
    budgets = list(budget)
    if len(budgets) != n:
        raise ValueError(f"got {len(budgets)} budgets for {n} questions (pass one Budget or one per question)")
    for b in budgets:
        if not isinstance(b, Budget):
            raise ValueError(f"budget entries must be s1jax.Budget, got {type(b).__name__}")
        if b.strings() != budgets[0].strings():
            raise ValueError("per-question budgets may differ only in their numeric fields (strings must agree)")
    return budgets


def render_prompts(tok: Any, questions: Sequence[str], budget: Budget, system: str | None) -> list[str]:
    return [tok.chat.render_prefix(q, system) + budget.thinking_start for q in questions]


def gen_bound(b: Budget, spec: bf.ForcingSpec) -> int | None:
    """Cache slots one row can use after its prompt, or None when thinking is unlimited."""
    if b.max_thinking_tokens is None:
        return None
    n = max(len(s) for s in spec.think_stops)
    waste_per_stop = n - 1 + (0 if spec.ignore else 1)
    events = b.num_ignore + 1 + (b.min_thinking_tokens if waste_per_stop else 0)
    answer = len(spec.newline) + len(spec.end_max) + b.max_answer_tokens + 1
    return b.max_thinking_tokens + waste_per_stop * events + answer


def device_memory_bytes() -> int | None:
    """Memory of the first device (accelerator: its allocator limit; CPU: physical RAM), or None if unknown."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    except Exception:  # noqa: BLE001 - backends without memory_stats
        pass
    try:
        import os

        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def slot_count(n: int, batch_size: int | None) -> int:
    """Row slots: ``batch_size`` (default: every question at once), at most n, rounded up to a power of two."""
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) <= 0):
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return bucket(n if batch_size is None else min(int(batch_size), n))


def build_workload(model: Any, tok: Any, texts: list[str], budgets: list[Budget], spec: bf.ForcingSpec,
                   batch_size: int | None, max_cache_len: int | None, extra_slots: int = 0,
                   mesh: Any = None) -> Workload:
    """Tokenize, size the cache (prompt + the largest budget's bound, or ``max_cache_len``) and check it all fits.

    With a ``mesh`` the row slots are rounded up to a multiple of data x fsdp (each device holds whole rows) and the
    memory check counts one device's share of the cache."""
    ids = tok.encode_batch(texts) if hasattr(tok, "encode_batch") else [tok.encode(t) for t in texts]
    ids = [list(x) for x in ids]
    longest = max(len(x) for x in ids)
    if longest == 0:
        raise ValueError("a prompt encodes to no tokens; check the chat format and thinking_start")
    context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if max_cache_len is not None:
        s = int(max_cache_len)
        if longest + 1 >= s:
            raise ValueError(f"a prompt has {longest} tokens, which does not fit max_cache_len={s} "
                             "(prompt + at least one generated token); raise max_cache_len or shorten the prompt")
    else:
        bounds = [gen_bound(b, spec) for b in budgets]
        if any(x is None for x in bounds):
            s = max(context, longest + 2)
        else:
            s = round_up(longest + max(bounds) + extra_slots, CACHE_MULTIPLE)
    if context and longest + 1 > context:
        raise ValueError(f"a prompt has {longest} tokens but the model's context is {context} "
                         "(max_position_embeddings); shorten the prompt")
    p = min(bucket(longest, PROMPT_BUCKET_MIN), s - 1)
    slots = slot_count(len(texts), batch_size)
    shape = (1, 1, 1) if mesh is None else (mesh.shape["data"], mesh.shape["fsdp"], mesh.shape["tensor"])
    slots = round_up(slots, shape[0] * shape[1])
    kv_bytes = per_device_bytes(model.config, *shape, slots, s, np.dtype(model.dtype).itemsize)["cache"]
    memory = device_memory_bytes()
    if memory is not None and kv_bytes > memory:
        where = "" if mesh is None else f" per device (mesh data={shape[0]} fsdp={shape[1]} tensor={shape[2]})"
        raise ValueError(f"{slots} row slots x {s} cache slots need {kv_bytes / 2**30:.1f} GiB of KV cache{where}, "
                         f"more than the device's {memory / 2**30:.1f} GiB; lower batch_size (row slots) or "
                         "max_cache_len")
    limits = {
        "max_think": np.array([bf.UNLIMITED if b.max_thinking_tokens is None else b.max_thinking_tokens
                               for b in budgets], np.int64),
        "min_think": np.array([b.min_thinking_tokens for b in budgets], np.int64),
        "num_ignore": np.array([b.num_ignore for b in budgets], np.int64),
        "max_answer": np.array([b.max_answer_tokens for b in budgets], np.int64),
    }
    return Workload(texts=texts, ids=ids, budgets=budgets, limits=limits, prompt_len=p, max_len=s, slots=slots)
