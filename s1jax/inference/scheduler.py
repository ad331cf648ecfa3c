"""Continuous batching: the host loop that keeps the engine's row slots busy (``s1jax.inference.engine``).

Chunked host loop, chosen over an on-device queue because refilling needs the host anyway (results are decoded to
text, a budget sweep starts its branches, the progress bar and the stream print) and a refill costs one small
prefill, not a recompilation. The loop:

1. ``refill`` every free slot with the next pending question (one row per call: one refill program per prompt
   bucket, whatever the number of free slots);
2. ``decode`` until a row finishes while questions are waiting (``stop_on_finish``), or until every row is done;
   with a progress bar or a stream, in chunks of ``PROGRESS_CHUNK`` / ``STREAM_CHUNK`` steps (the step limit is
   data: same program, same tokens);
3. read the finished rows back (their output tokens and stats), hand each to ``on_finish``, which may start a
   follow-up in the same slot (a sweep branch over that row's cache); otherwise the slot is free again.

Each question's PRNG key is derived from its index in the call, never from its slot, so sampled tokens do not depend
on which slot or batch a question lands in. ``schedule="static"`` refills only when every slot is free (the
behaviour of a static batch, kept for benchmarks).
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import time
from typing import Any, Callable

import jax
import numpy as np

from s1jax.inference import budget as bf
from s1jax.inference.engine import DecodeState, Engine, bucket, round_up
from s1jax.inference.requests import Workload
from s1jax.inference.results import HOST_FIELDS
from s1jax.inference.sampling import row_keys

__all__ = ["Finished", "RunStats", "run", "STREAM_CHUNK", "PROGRESS_CHUNK", "SCHEDULES", "shrink_floor"]

STREAM_CHUNK = 16  # decode steps per jitted call while streaming
PROGRESS_CHUNK = 48  # decode steps per jitted call while a progress bar is shown (one host sync per call)
UNBOUNDED = np.iinfo(np.int32).max
SCHEDULES = ("continuous", "static")


@dataclasses.dataclass
class Finished:
    """One row that finished: which task it ran and what it produced (host copies)."""

    slot: int
    question: int
    level: int  # -1: the question's own run; i >= 0: sweep branch i
    out: np.ndarray  # [N] output buffer of the row
    stats: dict[str, Any]  # HOST_FIELDS
    index: int  # cache slots the row used (where a branch answers from)
    valid: np.ndarray  # [S] bool: the row's cache valid mask
    taken: np.ndarray | None  # [k] bool: sweep snapshots taken by the row (None without a sweep)


# on_finish(finished) -> None (the slot is free) or (level, index0, out_row, valid_row): start that branch in the
# same slot (Engine.branch).
OnFinish = Callable[[Finished], "tuple[int, int, np.ndarray, np.ndarray] | None"]


@dataclasses.dataclass
class RunStats:
    """What the engine computed: ``row_steps`` (decode steps x the slots each step computed) and the
    ``kept_tokens`` of the questions' runs, whose first tokens (one per refilled row) came from the prefill;
    ``slots`` is the starting number of row slots, ``shrinks`` how often the batch shrank."""

    decode_steps: int = 0
    slots: int = 0
    kept_tokens: int = 0
    refills: int = 0
    shrinks: int = 0
    row_steps: int = 0
    wall_s: float = 0.0

    @property
    def useful_share(self) -> float:
        """Share of the row-steps that decoded a kept token."""
        return (self.kept_tokens - self.refills) / max(self.row_steps, 1)


def _tqdm(**kwargs: Any):
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


def shrink_floor(backend: str | None = None) -> int:
    """Fewest row slots the batch shrinks to. A decode step costs a fixed part (reading the weights) plus a part per
    row; halving the batch saves only the per-row part, and each new batch size compiles another decode program.
    Measured for SmolLM2-135M on 2 CPU cores: 36 ms + ~4.3 ms per row (B=32: 174 ms, B=16: 127 ms, B=8: 86 ms, B=4:
    67 ms), so below 16 rows a halving saves < 35 ms a step and does not repay its compile within a demo's tail:
    floor 16. A GPU/TPU step below ~64 rows is bound by reading the weights and the KV cache: floor 64."""
    return 16 if (backend or jax.default_backend()) == "cpu" else 64


def empty_rows(spec: bf.ForcingSpec, slots: int) -> bf.RowState:
    zeros = np.zeros((slots,), np.int64)
    return bf.initial_rows(np.zeros((slots, 1), np.int32), np.ones((slots,)), spec, row_keys(0, zeros),
                           live=np.zeros((slots,), bool),
                           limits={f: zeros for f in ("max_think", "min_think", "num_ignore", "max_answer")})


class _Stream:
    """Prints one question's text as it is decoded (a dropped stop token can change the tail: then reprint)."""

    def __init__(self, tok: Any):
        self.tok, self.printed = tok, ""

    def show(self, ids: list[int], final: bool) -> None:
        if jax.process_index() != 0:  # every host runs the same loop (same device calls); process 0 prints
            return
        text = self.tok.decode(ids)
        if text.startswith(self.printed):
            sys.stdout.write(text[len(self.printed):])
        else:
            sys.stdout.write("\n" + text)
        self.printed = text
        if final:
            sys.stdout.write("\n")
        sys.stdout.flush()


def _to_host(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, tree)


def run(model: Any, engine: Engine, nl: jax.Array, work: Workload, seed: int, on_finish: OnFinish, *,
        extra: Any = None, follow_ups: bool = False, progress: bool = False, desc: str = "generate",
        stream: int | None = None, tok: Any = None, schedule: str = "continuous", shrink: bool = True,
        min_slots: int | None = None) -> RunStats:
    """Run every question of ``work`` through ``engine``; finished rows go to ``on_finish`` (see module doc).

    ``follow_ups``: ``on_finish`` may start branches, so the loop stops at every finished row, not only while
    questions are waiting. ``stream``: a question index whose text is printed as it is decoded. ``shrink``: once
    no question is waiting and at most half the slots are busy, gather the busy rows into a batch half the size
    (a power of two >= ``min_slots``; a sharded batch keeps a multiple of its data axis) so that decode steps stop
    computing finished rows; the tokens do not change (rows are independent), each size compiles its own decode.
    ``min_slots`` defaults to :func:`shrink_floor`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    b, p, n = work.slots, work.prompt_len, len(work.ids)
    min_slots = shrink_floor() if min_slots is None else max(int(min_slots), 1)
    # a sharded batch keeps a multiple of its row axes (data x fsdp) when it shrinks
    row_multiple = 1 if engine.mesh is None else int(engine.mesh.shape["data"] * engine.mesh.shape["fsdp"])
    params = model.params
    # With a mesh, host inputs go in as NumPy: the programs place them (replicated) on every host's devices.
    as_input = _to_host if engine.mesh is not None else (lambda tree: tree)
    nl = as_input(nl)
    state: DecodeState = engine.init_state(as_input(empty_rows(engine.spec, b)), as_input(extra), slots=b,
                                           max_len=work.max_len)
    # Unsharded: commit the fresh state to the parameters' device. jit keys its cache on committedness, and every
    # later call gets the (committed) outputs of the previous one, so an uncommitted first state compiles each
    # program twice. (With a mesh the state is born sharded by a jitted program.)
    where = jax.tree_util.tree_leaves(params)[0].sharding
    if engine.mesh is None and isinstance(where, jax.sharding.SingleDeviceSharding):
        state = jax.device_put(state, where)
    pending = collections.deque(range(n))
    task: list[tuple[int, int] | None] = [None] * b  # slot -> (question, level)
    run_stats = RunStats(slots=b)
    # the bar is drawn by process 0 only, but every host syncs at the same chunks (same device calls everywhere)
    bar = _tqdm(total=n, desc=desc, unit="q", leave=False, disable=jax.process_index() != 0) if progress else None
    printer = _Stream(tok) if stream is not None else None
    chunk = STREAM_CHUNK if stream is not None else PROGRESS_CHUNK if progress else UNBOUNDED
    t0 = time.perf_counter()

    def refill(state: DecodeState, qids: list[int], slots: list[int], r: int) -> DecodeState:
        """Prefill questions ``qids`` into row ``slots`` with the ``r``-row refill program (r >= len(qids))."""
        k = len(qids)
        prompts = np.zeros((r, p), np.int32)
        lengths = np.ones((r,), np.int32)
        for j, q in enumerate(qids):
            prompts[j, : len(work.ids[q])] = work.ids[q]
            lengths[j] = len(work.ids[q])
        slot_ids = np.full((r,), b, np.int32)  # b: an unused entry (dropped)
        slot_ids[:k] = slots
        sel = np.array(qids + [0] * (r - k))
        rows = as_input(bf.initial_rows(prompts, lengths, engine.spec, row_keys(seed, sel), live=np.arange(r) < k,
                                    limits={f: v[sel] for f, v in work.limits.items()}))
        for q, i in zip(qids, slots):
            task[i] = (q, -1)
        run_stats.refills += 1
        return engine.refill(params, state, slot_ids, prompts, lengths, rows, nl)

    def shrink_slots(state: DecodeState) -> DecodeState:
        """Gather the busy slots (and enough idle ones to fill the bucket) into a smaller batch."""
        nonlocal b, task
        busy = [i for i in range(b) if task[i] is not None]
        target = round_up(bucket(len(busy), min_slots), row_multiple)
        if not busy or target >= b:
            return state
        idle = [i for i in range(b) if task[i] is None]
        slot_ids = busy + idle[: target - len(busy)]
        state = engine.gather(params, state, np.asarray(slot_ids, np.int32))
        task = [task[i] for i in slot_ids]
        b = target
        run_stats.shrinks += 1
        return state

    def fill(state: DecodeState) -> DecodeState:
        """Every free slot gets the next pending question, one row per call: one refill program per prompt bucket,
        whatever the number of free slots (compile time over a batched first prefill)."""
        free = [i for i in range(b) if task[i] is None]
        if schedule == "static" and len(free) < b:
            return state
        for i in free[: len(pending)]:
            state = refill(state, [pending.popleft()], [i], 1)
        return state

    try:
        state = fill(state)
        steps = 0
        while any(t is not None for t in task):
            if shrink and schedule == "continuous" and not pending:
                state = shrink_slots(state)
            stop = schedule == "continuous" and (bool(pending) or follow_ups)
            target = min(steps + chunk, int(UNBOUNDED))
            # with nothing waiting, come back when half the rows are done, to shrink the batch
            min_live = b // 2 if shrink and schedule == "continuous" and not pending and b > min_slots else 0
            state = engine.decode(params, state, nl, np.int32(target), np.bool_(stop), np.int32(min_live))
            phase, new_steps, out_len = jax.device_get((state.rows.phase, state.steps, state.rows.stats.out_len))
            done = [i for i in range(b) if task[i] is not None and int(phase[i]) == bf.DONE]
            if new_steps == steps and not done:
                raise RuntimeError("the decode loop made no progress (engine bug): please report it")
            run_stats.row_steps += (int(new_steps) - steps) * b
            steps = int(new_steps)
            if done:
                host = jax.device_get({
                    "out": state.out, "index": state.cache.index, "valid": state.cache.valid,
                    "stats": {f: getattr(state.rows.stats, f) for f in HOST_FIELDS},
                    "taken": getattr(state.extra, "taken", None),
                })
                for i in done:
                    q, level = task[i]
                    fin = Finished(slot=i, question=q, level=level, out=np.asarray(host["out"][i]),
                                   stats={f: host["stats"][f][i] for f in HOST_FIELDS}, index=int(host["index"][i]),
                                   valid=np.asarray(host["valid"][i]),
                                   taken=None if host["taken"] is None else np.asarray(host["taken"])[:, i])
                    run_stats.kept_tokens += int(fin.stats["out_len"]) if level < 0 else 0
                    if printer is not None and q == stream and level < 0:
                        printer.show([int(t) for t in fin.out[: int(fin.stats["out_len"])]], final=True)
                    follow = on_finish(fin)
                    if follow is None:
                        task[i] = None
                        if bar is not None:
                            bar.update(1)
                    else:
                        nxt, index0, out_row, valid_row = follow
                        task[i] = (q, nxt)
                        state = engine.branch(params, state, np.int32(i), np.int32(nxt), np.int32(index0),
                                              np.asarray(out_row, np.int32), np.asarray(valid_row, bool))
            live_tokens = sum(int(out_len[i]) for i in range(b) if task[i] is not None and i not in done)
            state = fill(state)
            if printer is not None:
                where = [i for i in range(b) if task[i] == (stream, -1)]
                if where and int(phase[where[0]]) != bf.DONE:
                    row = np.asarray(jax.device_get(state.out[where[0]]))
                    printer.show([int(t) for t in row[: int(out_len[where[0]])]], final=False)
            if bar is not None:
                live = sum(t is not None for t in task)
                rate = (run_stats.kept_tokens + live_tokens) / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(f"{rate:.1f} tok/s, live {live}/{b}", refresh=False)
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
    run_stats.decode_steps = steps
    run_stats.wall_s = time.perf_counter() - t0
    return run_stats
