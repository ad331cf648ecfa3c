"""Budget forcing: the per-row thinking state machine that runs inside the jitted decode loop.

Phases: THINKING -> ANSWER -> DONE. Every row carries a forced-token queue (fixed-size int array + length + read
pointer); while it is non-empty its tokens are fed instead of sampled ones. The machine follows the s1 reference
evaluation code (simplescaling's lm-evaluation-harness ``vllm_causallms.py``, budget forcing branch):

* The prompt ends with ``thinking_start``; thinking tokens are counted from there, injected ``ignore_str`` tokens
  included, dropped stop tokens excluded.
* A stop is the ``stop_thinking`` token sequence (``<|im_start|>``, possibly several tokens), ``answer_stop`` or an
  EOS id, sampled entirely since the last forced token. When one completes, its tokens are dropped (the already fed
  ones are removed from the cache by invalidating their slots and rewinding the RoPE position).
* The first ``num_ignore`` attempts, and any attempt while fewer than ``min_thinking_tokens`` are kept, are ignored:
  ``ignore_str`` tokens are queued and the next sampled token may not be a single-token stop (vLLM's
  ``min_tokens=1``). With an empty ``ignore_str`` the token before the stop is re-fed so the model re-predicts from
  the context without the stop (the stop is only suppressed).
* An accepted stop queues ``thinking_end`` (``<|im_start|>answer``).
* When ``max_thinking_tokens`` thinking tokens are kept, the queue becomes ``"\\n" + thinking_end + "\\nFinal
  Answer:"`` (the harness's ``thinking_end_max``), without the leading newline when the last thinking token already
  ends with one. This is checked before sampling, so a row never exceeds its budget (ignore strings that do not fit
  are cut, as the harness cuts its token ids).
* The answer phase samples up to ``max_answer_tokens`` tokens, ending at ``answer_stop`` or an EOS id (kept in the
  token ids).

Deliberate differences from the reference: stops are matched on token ids, not on detokenised text (the harness uses
``stop_token_ids`` whenever ``num_ignore`` is set, which is the same for single-token stops); the budget counts kept
thinking tokens including ``Wait`` (the README example counts generated tokens including the dropped stop token,
excluding ``Wait``), so ``thinking_tokens <= max_thinking_tokens`` always holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

__all__ = ["Budget", "ForcingSpec", "RowState", "THINKING", "ANSWER", "DONE", "decide", "match_stops", "newline_table"]

THINKING, ANSWER, DONE = 0, 1, 2
FIN_NONE, FIN_STOP, FIN_LENGTH = 0, 1, 2
# Rows of the forced-sequence table.
Q_IGNORE, Q_END, Q_NL_END_MAX, Q_END_MAX = 0, 1, 2, 3
UNLIMITED = np.iinfo(np.int32).max


@dataclasses.dataclass(frozen=True)
class Budget:
    """Budget forcing settings (s1 Sec. 3.1). ``max_thinking_tokens=None``: unlimited thinking."""

    max_thinking_tokens: int | None = None
    min_thinking_tokens: int = 0
    num_ignore: int = 0
    ignore_str: str = "Wait"
    thinking_start: str = "<|im_start|>think"
    thinking_end: str = "<|im_start|>answer"
    stop_thinking: str = "<|im_start|>"
    final_answer_str: str = "Final Answer:"
    max_answer_tokens: int = 512
    answer_stop: str = "<|im_end|>"

    def __post_init__(self) -> None:
        for name in ("max_thinking_tokens", "min_thinking_tokens", "num_ignore", "max_answer_tokens"):
            v = getattr(self, name)
            if v is None and name == "max_thinking_tokens":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"Budget.{name} must be a non-negative int, got {v!r}")
        for name in ("thinking_end", "stop_thinking"):
            if not getattr(self, name):
                raise ValueError(f"Budget.{name} must be a non-empty string")

    def strings(self) -> tuple[str, ...]:
        """The fields that must agree across the rows of one call (they become compiled constants)."""
        return (self.ignore_str, self.thinking_start, self.thinking_end, self.stop_thinking, self.final_answer_str,
                self.answer_stop)


def _tuple(ids: Any) -> tuple[int, ...]:
    return tuple(int(i) for i in ids)


@dataclasses.dataclass(frozen=True)
class ForcingSpec:
    """The token sequences of a Budget under one tokenizer (hashable: a static argument of the jitted loop)."""

    ignore: tuple[int, ...]
    end: tuple[int, ...]
    end_max: tuple[int, ...]
    newline: tuple[int, ...]
    think_stops: tuple[tuple[int, ...], ...]
    answer_stops: tuple[tuple[int, ...], ...]
    vocab_size: int

    @classmethod
    def build(cls, budget: Budget, tok: Any) -> "ForcingSpec":
        enc = tok.encode
        end_max_str = budget.thinking_end + ("\n" + budget.final_answer_str if budget.final_answer_str else "")
        eos = [(int(e),) for e in tok.eos_token_ids]
        answer = [_tuple(enc(budget.answer_stop))] if budget.answer_stop else []
        think = [_tuple(enc(budget.stop_thinking))] + answer + eos
        dedup = lambda seqs: tuple(dict.fromkeys(s for s in seqs if s))  # noqa: E731
        spec = cls(
            ignore=_tuple(enc(budget.ignore_str)) if budget.ignore_str else (),
            end=_tuple(enc(budget.thinking_end)),
            end_max=_tuple(enc(end_max_str)),
            newline=_tuple(enc("\n")),
            think_stops=dedup(think),
            answer_stops=dedup(answer + eos),
            vocab_size=int(tok.vocab_size),
        )
        if not spec.end or not spec.think_stops:
            raise ValueError("thinking_end and stop_thinking must encode to at least one token")
        return spec

    @property
    def stop_len(self) -> int:
        return max(len(s) for s in self.think_stops + self.answer_stops + ((1,),))

    @property
    def tail_len(self) -> int:
        """K: recent fed tokens kept per row (stop prefixes + the token before a stop, for re-feeding)."""
        return self.stop_len + 1

    @property
    def queue_len(self) -> int:
        return max(len(self.ignore), len(self.end), len(self.newline) + len(self.end_max), 1)

    def forced_table(self) -> tuple[np.ndarray, np.ndarray]:
        seqs = [self.ignore, self.end, self.newline + self.end_max, self.end_max]
        table = np.zeros((len(seqs), self.queue_len), np.int32)
        for i, s in enumerate(seqs):
            table[i, : len(s)] = s
        return table, np.array([len(s) for s in seqs], np.int32)

    def single_stop_ids(self) -> tuple[int, ...]:
        return tuple(sorted({s[0] for s in self.think_stops if len(s) == 1}))


def _stop_table(stops: tuple[tuple[int, ...], ...], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned [n_stops, width] (padding -1) and lengths."""
    table = np.full((max(len(stops), 1), width), -1, np.int32)
    lens = np.full((max(len(stops), 1),), width + 1, np.int32)  # an impossible length for the empty case
    for i, s in enumerate(stops):
        table[i, width - len(s):] = s
        lens[i] = len(s)
    return table, lens


def newline_table(tok: Any, size: int) -> np.ndarray:
    """[size] bool: decoding the id alone ends with a newline (for the "\\n" before Final Answer)."""
    out = np.zeros((size,), bool)
    for i in range(min(int(tok.vocab_size), size)):
        try:
            out[i] = tok.decode([i]).endswith("\n")
        except Exception:  # noqa: BLE001 - holes in a vocabulary decode to nothing
            pass
    return out


@struct.dataclass
class RowState:
    """Per-row scalars and small buffers of the decode loop (everything but the KV cache and the output buffer)."""

    tok: jax.Array  # [B] next token to feed
    pos: jax.Array  # [B] its RoPE position
    phase: jax.Array  # [B] THINKING / ANSWER / DONE
    queue: jax.Array  # [B, Q] forced tokens
    q_len: jax.Array  # [B]
    q_ptr: jax.Array  # [B] next queue entry to feed
    out_len: jax.Array  # [B] tokens recorded in the output buffer (the kept sequence after the prompt)
    think_len: jax.Array  # [B] output tokens that are thinking (-1 while thinking)
    answer_count: jax.Array  # [B] tokens sampled in the answer phase
    n_ignored: jax.Array  # [B]
    hit_max: jax.Array  # [B] bool
    suppress: jax.Array  # [B] bool: mask single-token stops at the next draw
    since_forced: jax.Array  # [B] consecutive sampled tokens at the end of the fed sequence
    tail_tok: jax.Array  # [B, K] last fed tokens (prompt included), newest last
    tail_slot: jax.Array  # [B, K] their cache slots (-1: none)
    n_sampled: jax.Array  # [B] draws so far (the PRNG counter)
    finish: jax.Array  # [B] FIN_*
    stop_len: jax.Array  # [B] tokens of the answer stop that ended the row
    key: jax.Array  # [B, 2] raw PRNG key of the row
    max_think: jax.Array  # [B]
    min_think: jax.Array  # [B]
    num_ignore: jax.Array  # [B]
    max_answer: jax.Array  # [B]


def match_stops(tail_tok: jax.Array, since_forced: jax.Array, cand: jax.Array,
                stops: tuple[tuple[int, ...], ...]) -> tuple[jax.Array, jax.Array]:
    """Does ``cand`` complete one of ``stops`` on the tail of sampled tokens? -> (match [B], stop length [B])."""
    if not stops:
        return jnp.zeros(cand.shape, bool), jnp.ones(cand.shape, jnp.int32)
    width = max(len(s) for s in stops)
    table, lens = _stop_table(stops, width)
    table, lens = jnp.asarray(table), jnp.asarray(lens)
    k = tail_tok.shape[1]
    prefix = tail_tok[:, k - (width - 1):] if width > 1 else tail_tok[:, :0]  # [B, width-1]
    eq = (prefix[:, None, :] == table[None, :, : width - 1]) | (table[None, :, : width - 1] < 0)
    ok = jnp.all(eq, axis=-1) & (cand[:, None] == table[None, :, width - 1]) & (since_forced[:, None] >= lens[None] - 1)
    return jnp.any(ok, axis=1), jnp.max(jnp.where(ok, lens[None], 1), axis=1)


def _shift_right(x: jax.Array, shift: jax.Array, fill: int) -> jax.Array:
    """Per row, drop the last ``shift`` entries and pad on the left: [B, K]."""
    k = x.shape[1]
    src = jnp.arange(k)[None, :] - shift[:, None]
    return jnp.where(src >= 0, jnp.take_along_axis(x, jnp.clip(src, 0, k - 1), axis=1), fill)


def decide(r: RowState, cand: jax.Array, slot_next: jax.Array, spec: ForcingSpec, nl_table: jax.Array,
           force_cap: bool = False) -> tuple[RowState, dict[str, jax.Array]]:
    """One step of the state machine for every row, given the freshly sampled candidate ``cand`` [B].

    Returns the new row state and the side effects for the caller: ``write_idx``/``write_tok``/``record`` (append to
    the output buffer) and ``invalid_slots`` [B, K] (cache slots to invalidate, -1 = none). ``slot_next`` is the
    cache slot at which the next token will be fed. ``force_cap`` computes the decision a row would take at its
    budget (used to branch a budget sweep).
    """
    k = r.tail_tok.shape[1]
    active = r.phase != DONE
    thinking = r.phase == THINKING
    answering = r.phase == ANSWER
    has_q = r.q_ptr < r.q_len
    cap = thinking & ((r.out_len >= r.max_think) | force_cap)
    ans_exhausted = answering & ~has_q & (r.answer_count >= r.max_answer)
    sampled = active & ~cap & ~has_q & ~ans_exhausted

    t_match, t_len = match_stops(r.tail_tok, r.since_forced, cand, spec.think_stops)
    is_stop = sampled & thinking & t_match
    m = jnp.where(is_stop, t_len - 1, 0)  # fed stop-prefix tokens to drop
    kept = r.out_len - m
    ignore = is_stop & ((r.n_ignored < r.num_ignore) | (kept < r.min_think))
    natural = is_stop & ~ignore
    refeed = ignore if not spec.ignore else jnp.zeros_like(ignore)
    drop = m + refeed.astype(jnp.int32)
    x = jnp.take_along_axis(r.tail_tok, jnp.clip(k - 1 - m, 0, k - 1)[:, None], axis=1)[:, 0]

    a_match, a_len = match_stops(r.tail_tok, r.since_forced, cand, spec.answer_stops)
    ans_stop = sampled & answering & a_match

    needs_nl = (r.out_len == 0) | ~nl_table[r.tail_tok[:, -1]]
    kind = jnp.full(cand.shape, -1, jnp.int32)
    kind = jnp.where(cap, jnp.where(needs_nl, Q_NL_END_MAX, Q_END_MAX), kind)
    kind = jnp.where(ignore & ~refeed, Q_IGNORE, kind)
    kind = jnp.where(natural, Q_END, kind)
    set_q = kind >= 0
    table, lens = spec.forced_table()
    table, lens = jnp.asarray(table), jnp.asarray(lens)
    safe_kind = jnp.maximum(kind, 0)
    queue = jnp.where(set_q[:, None], table[safe_kind], r.queue)
    q_len = jnp.where(set_q, lens[safe_kind], r.q_len)
    q_ptr = jnp.where(set_q, 0, r.q_ptr)
    from_q = active & (set_q | (has_q & ~cap)) & ~refeed
    q_head = jnp.take_along_axis(queue, jnp.clip(q_ptr, 0, queue.shape[1] - 1)[:, None], axis=1)[:, 0]
    nxt = jnp.where(refeed, x, jnp.where(from_q, q_head, cand))
    q_ptr = q_ptr + from_q.astype(jnp.int32)
    take_cand = sampled & ~is_stop
    record = from_q | take_cand

    answer_count = r.answer_count + (sampled & answering).astype(jnp.int32)
    done_now = ans_exhausted | ans_stop | (sampled & answering & (answer_count >= r.max_answer))
    phase = jnp.where(cap | natural, ANSWER, r.phase)
    phase = jnp.where(done_now, DONE, phase)
    finish = jnp.where(ans_stop, FIN_STOP, jnp.where(done_now, FIN_LENGTH, r.finish))

    tail_tok = _shift_right(r.tail_tok, drop, -1)
    tail_slot = _shift_right(r.tail_slot, drop, -1)
    push = active & ~ans_exhausted
    tail_tok = jnp.where(push[:, None], jnp.concatenate([tail_tok[:, 1:], nxt[:, None]], axis=1), tail_tok)
    new_slot = jnp.broadcast_to(slot_next, nxt.shape).astype(jnp.int32)
    tail_slot = jnp.where(push[:, None], jnp.concatenate([tail_slot[:, 1:], new_slot[:, None]], axis=1), tail_slot)
    from_end = k - 1 - jnp.arange(k)[None, :]
    invalid_slots = jnp.where(from_end < drop[:, None], r.tail_slot, -1)

    new = r.replace(
        tok=jnp.where(active, nxt, r.tok),
        pos=jnp.where(active, r.pos + 1 - drop, r.pos),
        phase=phase,
        queue=queue,
        q_len=q_len,
        q_ptr=q_ptr,
        out_len=kept + record.astype(jnp.int32),
        think_len=jnp.where(cap | natural, kept, r.think_len),
        answer_count=answer_count,
        n_ignored=r.n_ignored + ignore.astype(jnp.int32),
        hit_max=r.hit_max | cap,
        suppress=jnp.where(ignore, True, jnp.where(sampled, False, r.suppress)),
        since_forced=jnp.where(take_cand, r.since_forced + 1, 0),
        tail_tok=tail_tok,
        tail_slot=tail_slot,
        n_sampled=r.n_sampled + sampled.astype(jnp.int32),
        finish=finish,
        stop_len=jnp.where(ans_stop, a_len, r.stop_len),
    )
    effects = dict(write_idx=kept, write_tok=nxt, record=record, invalid_slots=invalid_slots)
    return new, effects


def suppress_mask(r: RowState, spec: ForcingSpec, vocab: int) -> jax.Array | None:
    """[B, V] True where a logit must be masked because the row may not stop right after an injection."""
    ids = spec.single_stop_ids()
    if not ids:
        return None
    vocab_mask = np.zeros((vocab,), bool)
    vocab_mask[[i for i in ids if i < vocab]] = True
    rows = r.suppress & (r.phase == THINKING)
    return rows[:, None] & jnp.asarray(vocab_mask)[None, :]
