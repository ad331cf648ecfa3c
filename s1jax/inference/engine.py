"""The jitted generation programs of the continuous-batching engine: refill slots, decode a chunk, branch a sweep.

Layout (``s1jax.model.kv_cache``, per-row index): ``B`` row slots, each with its own ``S`` cache slots, write
counter and RoPE positions. A question enters a free row slot by ``refill``: its prompt is prefilled left-aligned at
cache slots ``[0, L)`` (a small ``[R, P]`` forward pass written into the rows' regions with one scatter; the other
rows are untouched) and the first token is decided. ``decode`` then runs a ``lax.while_loop`` of decode steps over
all ``B`` rows: one decoder call on ``[B, 1]`` tokens, one draw per row, one ``budget.decide`` (no host round trip).
A row that feeds writes its own next slot; finished rows feed nothing and do not widen the attention read.

The loop stops when no row is live, a traced step limit is reached, or (``stop_on_finish``, set by the host while
questions are waiting) a row has just finished, so that the host can harvest it and refill its slot. Every argument
that changes between calls (step limit, slot ids, prompts, budgets, seeds) is data, so there is one compiled decode
program per (slots, cache length) and one refill program per prompt bucket (the host refills one row per call); the
decode state, cache included, is donated. With a mesh (``s1jax.inference.mesh``) every program has explicit in / out
shardings: weights tensor-parallel, the KV cache's rows over data x fsdp and KV heads over tensor, the rest of the
state replicated; the zeroed state is created by a jitted program straight into those shardings. The host loop that drives these programs is ``s1jax.inference.scheduler``.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from s1jax.inference import budget as bf
from s1jax.inference.mesh import cache_spec, param_targets
from s1jax.inference.sampling import Sampling, draw_keys, mask_vocab, sample_logits
from s1jax.model.decoder import Decoder
from s1jax.model.params import build_decoder
from s1jax.model.kv_cache import KVCache, init_cache
from s1jax.sharding import INFERENCE_RULES

__all__ = ["DecodeState", "Engine", "Recorder", "bucket", "round_up", "get_engine", "unaliased"]


@struct.dataclass
class DecodeState:
    cache: KVCache  # per-row index
    rows: bf.RowState
    out: jax.Array  # [B, N] recorded tokens after each row's prompt
    steps: jax.Array  # [] decode steps run (every step computes all B rows)
    extra: Any = None  # e.g. a sweep's snapshots


def bucket(n: int, minimum: int = 1) -> int:
    """Next power of two >= n (>= minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


class Recorder(Protocol):
    """A per-decision hook carried in ``DecodeState.extra`` (the sweep's snapshots); ``rows`` / ``new_rows``: the
    row state before / after the run's own decision."""

    def record(self, extra: Any, rows: bf.RowState, new_rows: bf.RowState, out: jax.Array, cand: jax.Array,
               slot_next: jax.Array, nl_table: jax.Array, mask: jax.Array) -> Any: ...

    def reset(self, extra: Any, mask: jax.Array) -> Any: ...

    def gather(self, extra: Any, slot_ids: jax.Array) -> Any: ...


def unaliased(tree: Any) -> Any:
    """``tree`` with a copy of every leaf whose device buffer another leaf already uses (JAX shares one buffer for
    equal small constants, e.g. the zeros of several counters)."""
    seen: set[Any] = set()

    def unique(x: Any) -> Any:
        if not isinstance(x, jax.Array) or isinstance(x, jax.core.Tracer):  # under tracing: nothing to donate yet
            return x
        key = tuple(shard.data.unsafe_buffer_pointer() for shard in x.addressable_shards)
        if key in seen:
            return x.copy()
        seen.add(key)
        return x

    return jax.tree_util.tree_map(unique, tree)


def apply_effects(cache: KVCache, out: jax.Array, fx: bf.Effects) -> tuple[KVCache, jax.Array]:
    """Record decided tokens in the output buffer and invalidate the cache slots of dropped tokens."""
    b, n = out.shape
    rows = jnp.arange(b)
    idx = jnp.clip(fx.write_idx, 0, n - 1)
    out = out.at[rows, idx].set(jnp.where(fx.record, fx.write_tok, out[rows, idx]))
    slots = jnp.where(fx.invalid_slots >= 0, fx.invalid_slots, cache.max_len)  # [B, K]; out of range: no-op
    valid = cache.valid.at[rows[:, None], slots].set(False, mode="drop")
    return cache.replace(valid=valid), out


def _scatter_rows(full: Any, part: Any, slots: jax.Array) -> Any:
    """Write the leaves of ``part`` (leading axis R) into rows ``slots`` of ``full`` (leading axis B; R..B-1 drop)."""
    return jax.tree_util.tree_map(lambda f, p: f.at[slots].set(p.astype(f.dtype), mode="drop"), full, part)


def _select_rows(mask: jax.Array, new: Any, old: Any) -> Any:
    def pick(n, o):
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree_util.tree_map(pick, new, old)


class Engine:
    """Compiled refill / decode / branch programs for one (model config, dtype, forcing spec, sampling)."""

    def __init__(self, config: Any, dtype: Any, attention_impl: str | None, spec: bf.ForcingSpec,
                 sampling: Sampling, recorder: Recorder | None = None, mesh: Mesh | None = None):
        self.config, self.spec, self.sampling, self.recorder = config, spec, sampling.static(), recorder
        self.attention_impl = attention_impl
        self.cache_dtype = jnp.dtype(dtype)
        self.mesh = mesh
        # The state, cache included, is donated and updated in place, on every backend: without donation each call
        # copies the whole state (SmolLM2 at 32 rows x 384 slots: a 283 MB cache, 178 ms per call on a 2-core CPU
        # against 38 ms donated), and a sweep makes hundreds of refill / decode / branch calls.
        donate = (1,)
        if mesh is None:
            self.state_sharding = None
            # zeros on the default device: nothing to compile
            self.init_state = lambda rows, extra, *, slots, max_len: unaliased(
                self._init_state(rows, extra, slots, max_len))
            self.refill = jax.jit(self._refill, donate_argnums=donate)
            self.decode = jax.jit(self._decode, donate_argnums=donate)
            self.branch = jax.jit(self._branch, donate_argnums=donate)
            self.gather = jax.jit(self._gather)  # a smaller state: nothing to update in place
            return
        # Sharded (``s1jax.inference.mesh``): parameters in their inference shardings, the KV cache's rows over
        # data x fsdp and its KV heads over tensor, the rest of the state and every host input replicated. The
        # same shardings in and out, so the donated state is updated in place.
        rep = NamedSharding(mesh, PartitionSpec())
        kv = NamedSharding(mesh, cache_spec(config, mesh))
        st = DecodeState(cache=KVCache(k=kv, v=kv, valid=rep, index=rep), rows=rep, out=rep, steps=rep,
                         extra=rep)  # a prefix of the state's tree: one sharding per subtree
        self.state_sharding = st
        params = param_targets(config, mesh)
        # the zeroed cache is born sharded (one program per slots x cache length), never whole on one device
        init = jax.jit(self._init_state, static_argnums=(2, 3), in_shardings=(rep, rep), out_shardings=st)
        self.init_state = lambda rows, extra, *, slots, max_len: unaliased(init(rows, extra, slots, max_len))
        self.refill = jax.jit(self._refill, in_shardings=(params, st) + (rep,) * 5, out_shardings=st,
                              donate_argnums=donate)
        self.decode = jax.jit(self._decode, in_shardings=(params, st) + (rep,) * 4, out_shardings=st,
                              donate_argnums=donate)
        self.branch = jax.jit(self._branch, in_shardings=(params, st) + (rep,) * 5, out_shardings=st,
                              donate_argnums=donate)
        self.gather = jax.jit(self._gather, in_shardings=(params, st, rep), out_shardings=st)  # no in-place: smaller

    # -- pieces ----------------------------------------------------------------------------------------------------
    def _module(self, params) -> Decoder:
        if self.mesh is None:
            return build_decoder(self.config, dtype=self.cache_dtype,
                                 param_dtype=jax.tree_util.tree_leaves(params)[0].dtype,
                                 attention_impl=self.attention_impl)
        return build_decoder(self.config, dtype=self.cache_dtype, param_dtype=jax.tree_util.tree_leaves(params)[0].dtype,
                             attention_impl=self.attention_impl, mesh=self.mesh, rules=INFERENCE_RULES)

    def _draw(self, rows: bf.RowState, logits: jax.Array) -> jax.Array:
        logits = mask_vocab(logits, self.spec.vocab_size)
        sup = bf.suppress_mask(rows, self.spec, logits.shape[-1])
        if sup is not None:
            logits = jnp.where(sup, -1e30, logits)
        return sample_logits(logits, draw_keys(rows.key, rows.n_sampled), self.sampling)

    def _step_decide(self, state: DecodeState, logits: jax.Array, nl_table: jax.Array,
                     mask: jax.Array) -> DecodeState:
        """Draw, record (sweep), decide and apply the effects for the rows in ``mask`` [B]; others are unchanged."""
        rows, cache, extra = state.rows, state.cache, state.extra
        cand = self._draw(rows, logits)
        new_rows, fx = bf.decide(rows, cand, cache.index, self.spec, nl_table)
        if self.recorder is not None and extra is not None:
            extra = self.recorder.record(extra, rows, new_rows, state.out, cand, cache.index, nl_table, mask)
        fx = fx.replace(record=fx.record & mask, invalid_slots=jnp.where(mask[:, None], fx.invalid_slots, -1))
        cache, out = apply_effects(cache, state.out, fx)
        return state.replace(cache=cache, rows=_select_rows(mask, new_rows, rows), out=out, extra=extra)

    # -- programs --------------------------------------------------------------------------------------------------
    def _init_state(self, rows: bf.RowState, extra: Any, slots: int, max_len: int) -> DecodeState:
        """Every slot empty (rows born DONE), a zeroed per-row cache of ``max_len`` slots."""
        cache = init_cache(self.config, slots, max_len, self.cache_dtype, per_row=True)
        return DecodeState(cache=cache, rows=rows, out=jnp.zeros((slots, max_len), jnp.int32),
                           steps=jnp.zeros((), jnp.int32), extra=extra)

    def _refill(self, params, state: DecodeState, slot_ids, prompts, lengths, rows: bf.RowState,
                nl_table) -> DecodeState:
        """Prefill ``prompts`` [R, P] (left-aligned, ``lengths`` [R]) into row slots ``slot_ids`` [R] (>= B: unused
        entry) and decide each one's first token. Nothing else in the state changes."""
        r, p = prompts.shape
        b = state.out.shape[0]
        module = self._module(params)
        tmp = init_cache(self.config, r, p, self.cache_dtype)  # the prompts' keys/values, then scattered
        mask = jnp.arange(p)[None, :] < lengths[:, None]  # [R, P]
        positions = jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32), (r, p))
        hidden, tmp = module.apply({"params": params}, prompts, positions, attention_mask=mask, cache=tmp,
                                   return_hidden=True)  # [R, P, embed]
        last = hidden[jnp.arange(r), jnp.maximum(lengths - 1, 0)][:, None, :]  # [R, 1, embed]
        logits = module.apply({"params": params}, last, method=Decoder.logits)[:, 0]  # [R, V]

        cache = state.cache
        rows_idx = jnp.broadcast_to(slot_ids[:, None], (r, p))
        cols = jnp.broadcast_to(jnp.arange(p)[None, :], (r, p))
        s = cache.max_len
        valid_rows = jnp.arange(s)[None, :] < lengths[:, None]  # [R, S]
        cache = cache.replace(
            k=cache.k.at[:, rows_idx, cols].set(tmp.k, mode="drop"),
            v=cache.v.at[:, rows_idx, cols].set(tmp.v, mode="drop"),
            valid=cache.valid.at[slot_ids].set(valid_rows, mode="drop"),
            index=cache.index.at[slot_ids].set(lengths.astype(jnp.int32), mode="drop"),
        )
        refilled = jnp.zeros((b,), bool).at[slot_ids].set(True, mode="drop")
        extra = state.extra
        if self.recorder is not None and extra is not None:
            extra = self.recorder.reset(extra, refilled)
        state = state.replace(cache=cache, rows=_scatter_rows(state.rows, rows, slot_ids),
                              out=jnp.where(refilled[:, None], 0, state.out), extra=extra)
        full_logits = jnp.zeros((b, logits.shape[-1]), logits.dtype).at[slot_ids].set(logits, mode="drop")
        return self._step_decide(state, full_logits, nl_table, refilled)

    def _decode(self, params, state: DecodeState, nl_table, max_steps, stop_on_finish, min_live) -> DecodeState:
        """Decode steps until no row is live, ``steps == max_steps``, (``stop_on_finish``) a row finished, or at most
        ``min_live`` rows are live (the host then shrinks the batch; 0: never)."""
        module = self._module(params)
        max_len = state.cache.max_len

        def cond(carry):
            s, finished = carry
            live = jnp.sum(s.rows.phase != bf.DONE)
            return (live > jnp.maximum(min_live, 0)) & (s.steps < max_steps) & ~(stop_on_finish & finished)

        def body(carry):
            s, finished = carry
            r = s.rows
            live = r.phase != bf.DONE
            logits, cache = module.apply({"params": params}, r.tok[:, None], r.pos[:, None],
                                         attention_mask=live[:, None], cache=s.cache)
            s = self._step_decide(s.replace(cache=cache), logits[:, 0], nl_table, live)
            # a live row whose next token has no cache slot left ends here ("cache_full")
            full = (s.rows.phase != bf.DONE) & (s.cache.index >= max_len)
            rows = s.rows.replace(phase=jnp.where(full, bf.DONE, s.rows.phase),
                                  stats=s.rows.stats.replace(finish=jnp.where(full, bf.FIN_CACHE_FULL,
                                                                              s.rows.stats.finish)))
            finished = finished | jnp.any(live & (rows.phase == bf.DONE))
            return s.replace(rows=rows, steps=s.steps + 1), finished

        state, _ = jax.lax.while_loop(cond, body, (state, jnp.zeros((), bool)))
        return state

    def _gather(self, params, state: DecodeState, slot_ids) -> DecodeState:
        """The state of row slots ``slot_ids`` [B'] only (B' < B): the scheduler shrinks the batch to the rows still
        live once no question is waiting, so a decode step stops computing finished rows (on a compute-bound
        device, most of a sweep's tail). One program per (B, B') pair; ``params`` is unused (one signature)."""
        del params
        take = lambda x: jnp.take(x, slot_ids, axis=0)  # noqa: E731
        cache = state.cache
        cache = cache.replace(k=jnp.take(cache.k, slot_ids, axis=1), v=jnp.take(cache.v, slot_ids, axis=1),
                              valid=take(cache.valid), index=take(cache.index))
        extra = state.extra
        if self.recorder is not None and extra is not None:
            extra = self.recorder.gather(extra, slot_ids)
        return DecodeState(cache=cache, rows=jax.tree_util.tree_map(take, state.rows), out=take(state.out),
                           steps=state.steps, extra=extra)

    def _branch(self, params, state: DecodeState, slot, level, index0, out_row, valid_row) -> DecodeState:
        """Start the sweep branch ``level`` in row ``slot``: the snapshot's row state over the cache prefix
        the thinking run wrote before it, answering into the free slots from ``index0`` (where the thinking run
        ended); ``out_row`` [N] and ``valid_row`` [S] are the thinking run's output (the branch's prefix) and valid
        mask at its end (earlier branches in the slot changed both). ``params`` is unused (one signature for all
        programs)."""
        del params
        snaps = state.extra
        snap = jax.tree_util.tree_map(lambda x: x[level, slot], snaps.rows)
        snap = snap.replace(tail=snap.tail.replace(slot=snap.tail.slot.at[-1].set(index0)))
        rows = jax.tree_util.tree_map(lambda f, x: f.at[slot].set(x), state.rows, snap)
        s = state.cache.max_len
        slots = jnp.arange(s)
        tail = snap.tail.slot[:-1]  # [K-1] kept fed tokens at snapshot time
        in_tail = jnp.any((slots[None, :] == tail[:, None]) & (tail[:, None] >= 0), axis=0)
        valid = (valid_row & (slots < snaps.index[level, slot])) | in_tail
        cache = state.cache.replace(valid=state.cache.valid.at[slot].set(valid),
                                    index=state.cache.index.at[slot].set(index0))
        n = state.out.shape[1]
        w = snaps.out_win.shape[2]
        pos = snap.stats.out_len - w + jnp.arange(w)  # [W]
        row_out = out_row.at[jnp.where(pos >= 0, pos, n)].set(snaps.out_win[level, slot], mode="drop")
        return state.replace(cache=cache, rows=rows, out=state.out.at[slot].set(row_out))


def get_engine(config: Any, dtype: str, attention_impl: str | None, spec: bf.ForcingSpec, sampling: Sampling,
               recorder: Recorder | None = None, mesh: Mesh | None = None) -> Engine:
    """The cached engine (and so the compiled programs) for this key; the sampling seed is not part of it."""
    return _cached_engine(config, dtype, attention_impl, spec, sampling.static(), recorder, mesh)


@functools.lru_cache(maxsize=16)
def _cached_engine(config, dtype, attention_impl, spec, sampling, recorder, mesh) -> Engine:
    return Engine(config, dtype, attention_impl, spec, sampling, recorder, mesh)
