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

__all__ = ["Budget", "ForcingSpec", "RowState", "Limits", "ForcedQueue", "StopTail", "Stats", "Effects", "Decision",
           "THINKING", "ANSWER", "DONE", "classify", "decide", "initial_rows", "match_stops", "newline_table"]

THINKING, ANSWER, DONE = 0, 1, 2
FIN_NONE, FIN_STOP, FIN_LENGTH, FIN_CACHE_FULL = 0, 1, 2, 3
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
class Limits:
    """A question's budget, set when it enters a row and never changed by the machine."""

    max_think: jax.Array  # [B] thinking tokens kept at most (UNLIMITED: no cap)
    min_think: jax.Array  # [B] stops are ignored while fewer thinking tokens are kept
    num_ignore: jax.Array  # [B] stops ignored regardless
    max_answer: jax.Array  # [B] tokens sampled in the answer phase at most


@struct.dataclass
class ForcedQueue:
    """Tokens fed instead of sampled ones (Wait, the thinking end, Final Answer): one table row + a read pointer."""

    tokens: jax.Array  # [B, Q]
    length: jax.Array  # [B]
    ptr: jax.Array  # [B] next entry to feed

    @property
    def pending(self) -> jax.Array:
        return self.ptr < self.length


@struct.dataclass
class StopTail:
    """The last fed tokens and their cache slots: stop sequences are matched on them and dropped from them."""

    tok: jax.Array  # [B, K] last fed tokens (prompt included), newest last (-1: none)
    slot: jax.Array  # [B, K] their cache slots (-1: none)
    since_forced: jax.Array  # [B] consecutive sampled tokens at the end of the fed sequence


@struct.dataclass
class Stats:
    """What the result reports: the kept output, the thinking/answer split and why the row ended."""

    out_len: jax.Array  # [B] tokens recorded in the output buffer (the kept sequence after the prompt)
    think_len: jax.Array  # [B] output tokens that are thinking (-1 while thinking)
    answer_count: jax.Array  # [B] tokens sampled in the answer phase
    n_ignored: jax.Array  # [B] stops ignored
    hit_max: jax.Array  # [B] bool: thinking was capped at max_think
    finish: jax.Array  # [B] FIN_*
    stop_len: jax.Array  # [B] tokens of the answer stop that ended the row


@struct.dataclass
class RowState:
    """Per-row state of the decode loop (everything but the KV cache and the output buffer), grouped by job."""

    tok: jax.Array  # [B] next token to feed
    pos: jax.Array  # [B] its RoPE position
    phase: jax.Array  # [B] THINKING / ANSWER / DONE
    suppress: jax.Array  # [B] bool: mask single-token stops at the next draw
    n_sampled: jax.Array  # [B] draws so far (the PRNG counter)
    key: jax.Array  # [B, 2] raw PRNG key of the row
    limits: Limits
    queue: ForcedQueue
    tail: StopTail
    stats: Stats


@struct.dataclass
class Effects:
    """What one decision asks of the caller besides the new row state."""

    write_idx: jax.Array  # [B] output position of the decided token
    write_tok: jax.Array  # [B] the decided token (fed next)
    record: jax.Array  # [B] bool: append it to the output (False for a dropped stop / a re-fed token)
    invalid_slots: jax.Array  # [B, K] cache slots whose tokens were dropped (-1: none)


@struct.dataclass
class Decision:
    """The named conditions of one step, all [B] (computed once by ``classify``, read by the steps after it)."""

    active: jax.Array  # row not DONE
    cap: jax.Array  # thinking budget reached: force the end of thinking now
    answer_exhausted: jax.Array  # answer budget spent and nothing queued: the row ends without feeding
    sampled: jax.Array  # the candidate is the row's own draw (no cap, nothing queued, not exhausted)
    stop: jax.Array  # the draw completes a thinking stop sequence
    stop_prefix: jax.Array  # fed tokens of that stop to drop (its length - 1; 0 when no stop)
    ignore: jax.Array  # the stop is ignored (num_ignore / min_thinking): inject ignore_str or re-feed
    natural: jax.Array  # the stop is accepted: thinking ends by itself
    refeed: jax.Array  # ignored with an empty ignore_str: re-feed the token before the stop
    answer_stop: jax.Array  # the draw completes an answer stop
    answer_stop_len: jax.Array  # its length


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


def _push(x: jax.Array, new: jax.Array, where: jax.Array) -> jax.Array:
    """Append ``new`` [B] as the newest entry of ``x`` [B, K] on the rows ``where``."""
    return jnp.where(where[:, None], jnp.concatenate([x[:, 1:], new[:, None]], axis=1), x)


def classify(r: RowState, cand: jax.Array, spec: ForcingSpec) -> Decision:
    """Step 1: which situation each row is in, given its freshly drawn candidate ``cand`` [B]."""
    active = r.phase != DONE
    thinking, answering = r.phase == THINKING, r.phase == ANSWER
    pending = r.queue.pending
    cap = thinking & (r.stats.out_len >= r.limits.max_think)
    answer_exhausted = answering & ~pending & (r.stats.answer_count >= r.limits.max_answer)
    sampled = active & ~cap & ~pending & ~answer_exhausted

    t_match, t_len = match_stops(r.tail.tok, r.tail.since_forced, cand, spec.think_stops)
    stop = sampled & thinking & t_match
    stop_prefix = jnp.where(stop, t_len - 1, 0)
    kept = r.stats.out_len - stop_prefix
    ignore = stop & ((r.stats.n_ignored < r.limits.num_ignore) | (kept < r.limits.min_think))
    refeed = ignore if not spec.ignore else jnp.zeros_like(ignore)
    a_match, a_len = match_stops(r.tail.tok, r.tail.since_forced, cand, spec.answer_stops)
    return Decision(active=active, cap=cap, answer_exhausted=answer_exhausted, sampled=sampled, stop=stop,
                    stop_prefix=stop_prefix, ignore=ignore, natural=stop & ~ignore, refeed=refeed,
                    answer_stop=sampled & answering & a_match, answer_stop_len=a_len)


def load_queue(r: RowState, d: Decision, spec: ForcingSpec, nl_table: jax.Array) -> tuple[ForcedQueue, jax.Array]:
    """Step 2: queue a forced sequence where the step calls for one -> (queue, loaded [B] bool).

    Cap: ``"\n" + thinking_end + "\nFinal Answer:"`` (no leading newline after a token ending in one); ignored stop:
    ``ignore_str`` (nothing when it is empty: the row re-feeds instead); accepted stop: ``thinking_end``."""
    needs_nl = (r.stats.out_len == 0) | ~nl_table[r.tail.tok[:, -1]]
    kind = jnp.full(d.cap.shape, -1, jnp.int32)
    kind = jnp.where(d.cap, jnp.where(needs_nl, Q_NL_END_MAX, Q_END_MAX), kind)
    kind = jnp.where(d.ignore & ~d.refeed, Q_IGNORE, kind)
    kind = jnp.where(d.natural, Q_END, kind)
    loaded = kind >= 0
    table, lens = spec.forced_table()
    safe = jnp.maximum(kind, 0)
    q = r.queue
    return ForcedQueue(
        tokens=jnp.where(loaded[:, None], jnp.asarray(table)[safe], q.tokens),
        length=jnp.where(loaded, jnp.asarray(lens)[safe], q.length),
        ptr=jnp.where(loaded, 0, q.ptr),
    ), loaded


def next_token(r: RowState, d: Decision, queue: ForcedQueue, loaded: jax.Array,
               cand: jax.Array) -> tuple[jax.Array, jax.Array, ForcedQueue]:
    """Step 3: the token fed next -> (token [B], from_queue [B] bool, queue with its pointer advanced).

    Priority: the token before a dropped stop (re-feed), then the queue head, then the candidate."""
    k = r.tail.tok.shape[1]
    from_queue = d.active & (loaded | (r.queue.pending & ~d.cap)) & ~d.refeed
    head = jnp.take_along_axis(queue.tokens, jnp.clip(queue.ptr, 0, queue.tokens.shape[1] - 1)[:, None], axis=1)[:, 0]
    before_stop = jnp.take_along_axis(r.tail.tok, jnp.clip(k - 1 - d.stop_prefix, 0, k - 1)[:, None], axis=1)[:, 0]
    token = jnp.where(d.refeed, before_stop, jnp.where(from_queue, head, cand))
    return token, from_queue, queue.replace(ptr=queue.ptr + from_queue.astype(jnp.int32))


def advance_phase(r: RowState, d: Decision) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Step 4: THINKING -> ANSWER on a cap or an accepted stop; ANSWER -> DONE on an answer stop or exhaustion.
    -> (phase, finish, answer_count)."""
    answering = r.phase == ANSWER
    answer_count = r.stats.answer_count + (d.sampled & answering).astype(jnp.int32)
    done = d.answer_exhausted | d.answer_stop | (d.sampled & answering & (answer_count >= r.limits.max_answer))
    phase = jnp.where(d.cap | d.natural, ANSWER, r.phase)
    phase = jnp.where(done, DONE, phase)
    finish = jnp.where(d.answer_stop, FIN_STOP, jnp.where(done, FIN_LENGTH, r.stats.finish))
    return phase, finish, answer_count


def update_tail(r: RowState, d: Decision, token: jax.Array, slot_next: jax.Array,
                drop: jax.Array) -> tuple[StopTail, jax.Array]:
    """Step 5: drop the last ``drop`` fed tokens and push the new one -> (tail, invalid_slots [B, K] of the dropped)."""
    k = r.tail.tok.shape[1]
    take_cand = d.sampled & ~d.stop
    push = d.active & ~d.answer_exhausted
    slot = jnp.broadcast_to(slot_next, token.shape).astype(jnp.int32)
    from_end = k - 1 - jnp.arange(k)[None, :]
    tail = StopTail(
        tok=_push(_shift_right(r.tail.tok, drop, -1), token, push),
        slot=_push(_shift_right(r.tail.slot, drop, -1), slot, push),
        since_forced=jnp.where(take_cand, r.tail.since_forced + 1, 0),
    )
    return tail, jnp.where(from_end < drop[:, None], r.tail.slot, -1)


def decide(r: RowState, cand: jax.Array, slot_next: jax.Array, spec: ForcingSpec,
           nl_table: jax.Array) -> tuple[RowState, Effects]:
    """One step of the state machine for every row, given the freshly sampled candidate ``cand`` [B].

    ``slot_next`` ([] or [B]) is the cache slot at which the next token will be fed. A sweep (``sweep.py``) calls it
    again with each level's limits to find where a level leaves the shared run. Pure: the steps are ``classify`` ->
    ``load_queue`` -> ``next_token`` -> ``advance_phase`` -> ``update_tail``; the returned ``Effects`` say what to
    record in the output buffer and which cache slots to invalidate.
    """
    d = classify(r, cand, spec)
    queue, loaded = load_queue(r, d, spec, nl_table)
    token, from_queue, queue = next_token(r, d, queue, loaded, cand)
    phase, finish, answer_count = advance_phase(r, d)
    drop = d.stop_prefix + d.refeed.astype(jnp.int32)
    tail, invalid_slots = update_tail(r, d, token, slot_next, drop)
    record = from_queue | (d.sampled & ~d.stop)
    kept = r.stats.out_len - d.stop_prefix
    s = r.stats
    stats = Stats(
        out_len=kept + record.astype(jnp.int32),
        think_len=jnp.where(d.cap | d.natural, kept, s.think_len),
        answer_count=answer_count,
        n_ignored=s.n_ignored + d.ignore.astype(jnp.int32),
        hit_max=s.hit_max | d.cap,
        finish=finish,
        stop_len=jnp.where(d.answer_stop, d.answer_stop_len, s.stop_len),
    )
    new = r.replace(
        tok=jnp.where(d.active, token, r.tok),
        pos=jnp.where(d.active, r.pos + 1 - drop, r.pos),
        phase=phase,
        suppress=jnp.where(d.ignore, True, jnp.where(d.sampled, False, r.suppress)),
        n_sampled=r.n_sampled + d.sampled.astype(jnp.int32),
        queue=queue,
        tail=tail,
        stats=stats,
    )
    return new, Effects(write_idx=kept, write_tok=token, record=record, invalid_slots=invalid_slots)


def initial_rows(prompts: np.ndarray, lengths: np.ndarray, spec: ForcingSpec, keys: jax.Array, live: np.ndarray,
                 limits: dict[str, np.ndarray]) -> RowState:
    """Row state before the first decision for left-aligned prompts (``prompts[i, :lengths[i]]`` at cache slots
    ``0 .. lengths[i] - 1``): the 'fed' tokens are the prompt. ``limits``: max_think, min_think, num_ignore,
    max_answer, each [B]."""
    b, p = prompts.shape
    k, q = spec.tail_len, spec.queue_len
    lengths = np.asarray(lengths, np.int64)
    slots = lengths[:, None] - k + np.arange(k)[None, :]  # [B, K] the last K prompt slots, newest last
    real = slots >= 0
    tail_tok = np.where(real, np.take_along_axis(prompts, np.clip(slots, 0, p - 1), axis=1), -1)
    i32 = lambda a: jnp.asarray(a, jnp.int32)  # noqa: E731
    zeros = i32(np.zeros((b,), np.int32))
    return RowState(
        tok=i32(prompts[np.arange(b), np.maximum(lengths - 1, 0)]), pos=i32(np.maximum(lengths - 1, 0)),
        phase=i32(np.where(live, THINKING, DONE)), suppress=jnp.zeros((b,), bool), n_sampled=zeros, key=keys,
        limits=Limits(**{f: i32(limits[f]) for f in ("max_think", "min_think", "num_ignore", "max_answer")}),
        queue=ForcedQueue(tokens=jnp.zeros((b, q), jnp.int32), length=zeros, ptr=zeros),
        tail=StopTail(tok=i32(tail_tok), slot=i32(np.where(real, slots, -1)), since_forced=zeros),
        stats=Stats(out_len=zeros, think_len=i32(np.full((b,), -1)), answer_count=zeros, n_ignored=zeros,
                    hit_max=jnp.zeros((b,), bool), finish=zeros, stop_len=zeros),
    )


def suppress_mask(r: RowState, spec: ForcingSpec, vocab: int) -> jax.Array | None:
    """[B, V] True where a logit must be masked because the row may not stop right after an injection."""
    ids = spec.single_stop_ids()
    if not ids:
        return None
    vocab_mask = np.zeros((vocab,), bool)
    vocab_mask[[i for i in ids if i < vocab]] = True
    rows = r.suppress & (r.phase == THINKING)
    return rows[:, None] & jnp.asarray(vocab_mask)[None, :]
