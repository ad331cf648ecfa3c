"""The host side of generation, shared by ``generate`` and the budget sweep: render and tokenize prompts, bucket and
chunk the batch, drive the jitted engine (``s1jax.inference.engine``), and turn its output buffers into
``GenerationResult``s.
"""

from __future__ import annotations

import dataclasses
import sys
import weakref
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from s1jax.inference import budget as bf
from s1jax.inference.budget import Budget
from s1jax.inference.engine import DecodeState, bucket, get_engine, initial_rows, round_up
from s1jax.inference.sampling import Sampling, row_keys

__all__ = [
    "GenerationResult",
    "Batch",
    "check_questions",
    "render_prompts",
    "nl_table",
    "prepare",
    "decode",
    "run_batch",
    "host_rows",
    "make_result",
    "chunks",
    "progress_bar",
]

STREAM_CHUNK = 16  # decode steps per jitted call while streaming
PROGRESS_CHUNK = 48  # decode steps per jitted call while a progress bar is shown (one host sync per call)


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


# ----------------------------------------------------------------------------------------------------------------------
# Preparation
# ----------------------------------------------------------------------------------------------------------------------

_NL_CACHE: "weakref.WeakKeyDictionary[Any, dict[int, jax.Array]]" = weakref.WeakKeyDictionary()


def nl_table(tok: Any, size: int) -> jax.Array:
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


def render_prompts(tok: Any, questions: Sequence[str], budget: Budget, system: str | None) -> list[str]:
    return [tok.chat.render_prefix(q, system) + budget.thinking_start for q in questions]


def _gen_bound(b: Budget, spec: bf.ForcingSpec) -> int | None:
    """Cache slots one row can use after its prompt, or None when thinking is unlimited."""
    if b.max_thinking_tokens is None:
        return None
    n = max(len(s) for s in spec.think_stops)
    waste_per_stop = n - 1 + (0 if spec.ignore else 1)
    events = b.num_ignore + 1 + (b.min_thinking_tokens if waste_per_stop else 0)
    answer = len(spec.newline) + len(spec.end_max) + b.max_answer_tokens + 1
    return b.max_thinking_tokens + waste_per_stop * events + answer


def _cache_len(p: int, bounds: list[int | None], max_cache_len: int | None, model: Any, extra: int = 0) -> int:
    if max_cache_len is not None:
        return int(max_cache_len)
    if any(x is None for x in bounds):
        return max(int(model.config.max_position_embeddings), p + 1)
    return round_up(p + max(bounds) + extra, 128)


def _pad_prompts(ids: list[list[int]], p: int, pad_id: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    prompts = np.full((rows, p), pad_id, np.int32)
    mask = np.zeros((rows, p), np.int32)
    for i, seq in enumerate(ids):
        prompts[i, p - len(seq):] = seq
        mask[i, p - len(seq):] = 1
    for i in range(len(ids), rows):  # filler rows: a copy of the first prompt, born DONE
        prompts[i], mask[i] = prompts[0], mask[0]
    return prompts, mask


# ----------------------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------------------


def make_result(tok: Any, prompt: str, budget: Budget, out: np.ndarray, r: dict[str, np.ndarray],
            i: int) -> GenerationResult:
    ids = [int(t) for t in out[i, : int(r["out_len"][i])]]
    done = int(r["phase"][i]) == bf.DONE
    think_len = int(r["think_len"][i])
    if think_len < 0:
        think_len = len(ids)
    finish = {bf.FIN_STOP: "stop", bf.FIN_LENGTH: "length"}.get(int(r["finish"][i]), "stop") if done else "cache_full"
    stop_len = int(r["stop_len"][i]) if finish == "stop" and done else 0
    answer_text = tok.decode(ids[think_len: len(ids) - stop_len])
    cut = answer_text.find(budget.thinking_end)
    if cut >= 0:
        answer_text = answer_text[cut + len(budget.thinking_end):]
    return GenerationResult(
        prompt=prompt,
        thinking=tok.decode(ids[:think_len]),
        answer=answer_text,
        thinking_tokens=think_len,
        answer_tokens=max(int(r["answer_count"][i]) - stop_len, 0),
        num_ignored=int(r["n_ignored"][i]),
        hit_max_budget=bool(r["hit_max"][i]),
        token_ids=ids,
        finish_reason=finish,
    )


def host_rows(state: DecodeState) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    r = state.rows
    fields = ("out_len", "phase", "think_len", "finish", "stop_len", "answer_count", "n_ignored", "hit_max")
    host = jax.device_get({f: getattr(r, f) for f in fields} | {"out": state.out})
    return np.asarray(host.pop("out")), {k: np.asarray(v) for k, v in host.items()}


# ----------------------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Batch:
    """One prepared chunk: what the engine needs, plus what the results need."""

    prompts: np.ndarray
    mask: np.ndarray
    rows: bf.RowState
    texts: list[str]
    n: int
    max_len: int


def prepare(model: Any, tok: Any, texts: list[str], budgets: list[Budget], spec: bf.ForcingSpec, sampling: Sampling,
            first_index: int, batch_rows: int, max_cache_len: int | None, extra_slots: int = 0) -> Batch:
    ids = tok.encode_batch(texts) if hasattr(tok, "encode_batch") else [tok.encode(t) for t in texts]
    longest = max(len(x) for x in ids)
    if max_cache_len is not None and longest + 1 >= int(max_cache_len):
        raise ValueError(f"a prompt has {longest} tokens, which does not fit max_cache_len={max_cache_len} "
                         "(prompt + at least one generated token); raise max_cache_len or shorten the prompt")
    context = int(model.config.max_position_embeddings)
    if longest + 1 > context:
        raise ValueError(f"a prompt has {longest} tokens, more than the model's context of {context} "
                         "(max_position_embeddings) allows; shorten the prompt")
    p = bucket(longest, 32)
    bounds = [_gen_bound(b, spec) for b in budgets]
    s = _cache_len(p, bounds, max_cache_len, model, extra_slots)
    if longest + 1 >= s:
        raise ValueError(f"a prompt has {longest} tokens, which does not fit the cache of {s} slots")
    p = min(p, s - 1)
    prompts, mask = _pad_prompts(ids, p, int(getattr(tok, "pad_token_id", 0) or 0), batch_rows)
    n = len(texts)
    pad = batch_rows - n
    fill = lambda vals, v: np.array(list(vals) + [v] * pad, np.int64)  # noqa: E731
    mx = fill((bf.UNLIMITED if b.max_thinking_tokens is None else b.max_thinking_tokens for b in budgets), 0)
    rows = initial_rows(
        prompts, mask, spec, row_keys(sampling.seed, np.arange(first_index, first_index + batch_rows)),
        live=np.arange(batch_rows) < n, max_think=mx, min_think=fill((b.min_thinking_tokens for b in budgets), 0),
        num_ignore=fill((b.num_ignore for b in budgets), 0), max_answer=fill((b.max_answer_tokens for b in budgets), 0),
    )
    return Batch(prompts, mask, rows, texts, n, s)


def _sync(state: DecodeState, n_rows: int) -> tuple[np.ndarray, int, int]:
    phase, index, steps = jax.device_get((state.rows.phase, state.cache.index, state.steps))
    return np.asarray(phase)[:n_rows], int(index), int(steps)


def decode(model: Any, engine: Any, state: DecodeState, nl: jax.Array, max_len: int, n_rows: int,
           progress: bool = False, desc: str = "decode") -> DecodeState:
    """Run the decode loop to the end: one jitted call, or with ``progress`` chunks of ``PROGRESS_CHUNK`` steps.

    ``max_steps`` is a traced argument of the compiled loop, so the chunked run uses the same program and computes
    the same thing (the state, step counter included, is carried between calls). The bar's unit is decode steps,
    its total the cache slots left; each chunk costs one host sync (rows live, slot count, steps)."""
    if not progress:
        return engine.decode(model.params, state, nl, np.int32(max_len + 1))
    phase, index, steps = _sync(state, n_rows)
    bar = _tqdm(total=max(max_len - index, 0), desc=desc, unit="step", leave=False)
    start = done = steps
    try:
        while bool(np.any(phase != bf.DONE)) and index < max_len:
            state = engine.decode(model.params, state, nl, np.int32(done + PROGRESS_CHUNK))
            phase, index, steps = _sync(state, n_rows)
            live = int(np.sum(phase != bf.DONE))
            bar.update(steps - done)
            bar.set_postfix_str(f"rows done {n_rows - live}/{n_rows}, live {live}", refresh=False)
            if steps == done:  # the loop made no progress (cannot happen; guards against a hang)
                break
            done = steps
        bar.total = bar.n = done - start  # finished early: show the run as complete
        bar.refresh()
    finally:
        bar.close()
    return state


def run_batch(model: Any, engine: Any, batch: Batch, nl: jax.Array, extra: Any = None, stream_row: int | None = None,
              tok: Any = None, progress: bool = False, desc: str = "decode") -> DecodeState:
    state = engine.prefill(model.params, batch.prompts, batch.mask, batch.rows, nl, extra, max_len=batch.max_len)
    if stream_row is None:
        return decode(model, engine, state, nl, batch.max_len, batch.n, progress, desc)
    printed, steps = "", 0
    while True:
        steps += STREAM_CHUNK
        state = engine.decode(model.params, state, nl, np.int32(steps))
        out_len = int(state.rows.out_len[stream_row])
        text = tok.decode([int(t) for t in np.asarray(state.out[stream_row, :out_len])])
        if text.startswith(printed):
            sys.stdout.write(text[len(printed):])
        else:  # a dropped stop token changed the tail: reprint the line
            sys.stdout.write("\n" + text)
        sys.stdout.flush()
        printed = text
        live = bool(np.any(np.asarray(state.rows.phase) != bf.DONE))
        if not live or int(state.cache.index) >= batch.max_len:
            sys.stdout.write("\n")
            return state


def chunks(n: int, batch_size: int | None) -> tuple[int, list[tuple[int, int]]]:
    if batch_size is not None and int(batch_size) <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    size = n if batch_size is None else min(int(batch_size), n)
    return bucket(size), [(i, min(i + size, n)) for i in range(0, n, size)]


def _tqdm(**kwargs: Any):
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


def progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    return _tqdm(total=total, desc="generate", unit="q")
