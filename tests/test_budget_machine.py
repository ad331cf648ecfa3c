"""The budget-forcing state machine (``s1jax.inference.budget.decide``) without a model: table-driven transitions
on one row with synthetic token ids."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s1jax.inference import budget as bf

NL, STOP, S1, S2, ANS_STOP = 5, 30, 40, 41, 50  # S1 S2: a two-token thinking stop
SPEC = bf.ForcingSpec(ignore=(10, 11), end=(20, 21), end_max=(20, 21, 22), newline=(NL,),
                      think_stops=((STOP,), (S1, S2), (ANS_STOP,)), answer_stops=((ANS_STOP,),), vocab_size=64)
SPEC_EMPTY_IGNORE = dataclasses.replace(SPEC, ignore=())
NL_TABLE = jnp.zeros((64,), bool).at[NL].set(True)
PROMPT = [1, 2, 3, 4]  # fed at cache slots 0..3; a live row's tail then holds tokens [2, 3, 4] (K = 3)


def make_row(spec=SPEC, **fields) -> bf.RowState:
    """One live THINKING row after its prompt, with ``fields`` overridden ("stats.out_len": 5, "tail.tok": [...])."""
    limits = dict(max_think=100, min_think=0, num_ignore=0, max_answer=10)
    limits.update({k[len("limits."):]: v for k, v in fields.items() if k.startswith("limits.")})
    r = bf.initial_rows(np.array([PROMPT]), np.array([len(PROMPT)]), spec, jnp.zeros((1, 2), jnp.uint32),
                        np.array([True]), {k: np.array([v]) for k, v in limits.items()})
    for name, value in fields.items():
        if name.startswith("limits."):
            continue
        group, _, leaf = name.rpartition(".")
        value = jnp.asarray([value])
        if group:
            sub = getattr(r, group)
            r = r.replace(**{group: sub.replace(**{leaf: value.astype(getattr(sub, leaf).dtype)})})
        else:
            r = r.replace(**{leaf: value.astype(getattr(r, leaf).dtype)})
    return r


_decide = jax.jit(bf.decide, static_argnums=(3,))  # one compile per spec instead of op-by-op dispatch


def step(r: bf.RowState, cand: int, spec=SPEC, slot: int = 20):
    new, fx = _decide(r, jnp.asarray([cand], jnp.int32), jnp.asarray([slot], jnp.int32), spec, NL_TABLE)
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[0], (new, fx))


def queue_of(r) -> list[int]:
    return [int(t) for t in r.queue.tokens[: int(r.queue.length)]]


# (id, spec, row fields, candidate, expected: {attribute path: value} on (new row, effects))
CASES = [
    ("sample-keeps-token", SPEC, {"stats.out_len": 5}, 7,
     {"tok": 7, "fx.record": True, "fx.write_idx": 5, "stats.out_len": 6, "phase": bf.THINKING, "n_sampled": 1,
      "tail.since_forced": 1}),
    ("stop-ignored-injects-wait", SPEC, {"stats.out_len": 5, "limits.num_ignore": 1}, STOP,
     {"tok": 10, "fx.record": True, "stats.out_len": 6, "stats.n_ignored": 1, "suppress": True, "queue.ptr": 1,
      "queue": [10, 11], "phase": bf.THINKING, "fx.invalid_slots": [-1, -1, -1]}),
    ("stop-accepted-ends-thinking", SPEC, {"stats.out_len": 5, "limits.num_ignore": 1, "stats.n_ignored": 1}, STOP,
     {"tok": 20, "queue": [20, 21], "phase": bf.ANSWER, "stats.think_len": 5, "stats.out_len": 6,
      "stats.hit_max": False}),
    ("min-thinking-overrides-num-ignore", SPEC, {"stats.out_len": 5, "limits.min_think": 8}, STOP,
     {"tok": 10, "stats.n_ignored": 1, "phase": bf.THINKING}),
    ("cap-needs-newline", SPEC, {"stats.out_len": 12, "limits.max_think": 12}, 7,
     {"tok": NL, "queue": [NL, 20, 21, 22], "phase": bf.ANSWER, "stats.hit_max": True, "stats.think_len": 12,
      "n_sampled": 0, "fx.record": True}),
    ("cap-after-newline-token", SPEC, {"stats.out_len": 12, "limits.max_think": 12, "tail.tok": [2, 3, NL]}, 7,
     {"tok": 20, "queue": [20, 21, 22], "phase": bf.ANSWER, "stats.hit_max": True}),
    ("cap-during-forced-queue", SPEC, {"stats.out_len": 12, "limits.max_think": 12, "queue.tokens": [10, 11, 0, 0],
                                       "queue.length": 2, "queue.ptr": 1}, 7,
     {"tok": NL, "queue": [NL, 20, 21, 22], "queue.ptr": 1, "phase": bf.ANSWER, "stats.hit_max": True}),
    ("queue-feeds-before-sampling", SPEC, {"stats.out_len": 6, "queue.tokens": [10, 11, 0, 0], "queue.length": 2,
                                           "queue.ptr": 1}, STOP,
     {"tok": 11, "queue.ptr": 2, "n_sampled": 0, "stats.n_ignored": 0, "stats.out_len": 7, "tail.since_forced": 0}),
    ("two-token-stop-dropped", SPEC, {"stats.out_len": 6, "tail.tok": [3, 9, S1], "tail.slot": [10, 11, 12],
                                      "tail.since_forced": 2, "limits.num_ignore": 1}, S2,
     {"tok": 10, "stats.out_len": 6, "fx.write_idx": 5, "fx.invalid_slots": [-1, -1, 12], "stats.n_ignored": 1,
      "tail.tok": [3, 9, 10], "tail.slot": [10, 11, 20]}),
    ("two-token-stop-split-by-forced-token", SPEC, {"stats.out_len": 6, "tail.tok": [3, 9, S1],
                                                    "tail.since_forced": 0, "limits.num_ignore": 1}, S2,
     {"tok": S2, "stats.out_len": 7, "stats.n_ignored": 0, "fx.invalid_slots": [-1, -1, -1]}),
    ("empty-ignore-refeeds-token-before-stop", SPEC_EMPTY_IGNORE, {"stats.out_len": 3, "limits.min_think": 10,
                                                                   "tail.slot": [1, 2, 3], "pos": 3}, STOP,
     {"tok": 4, "pos": 3, "fx.record": False, "stats.out_len": 3, "fx.invalid_slots": [-1, -1, 3],
      "stats.n_ignored": 1, "suppress": True, "tail.tok": [2, 3, 4], "tail.slot": [1, 2, 20]}),
    ("empty-ignore-two-token-stop", SPEC_EMPTY_IGNORE, {"stats.out_len": 6, "tail.tok": [3, 9, S1],
                                                        "tail.slot": [10, 11, 12], "tail.since_forced": 2,
                                                        "limits.num_ignore": 1}, S2,
     {"tok": 9, "stats.out_len": 5, "fx.record": False, "fx.invalid_slots": [-1, 11, 12], "tail.tok": [-1, 3, 9]}),
    ("answer-sample-counts", SPEC, {"phase": bf.ANSWER, "stats.out_len": 9, "stats.answer_count": 2}, 7,
     {"stats.answer_count": 3, "phase": bf.ANSWER, "fx.record": True}),
    ("answer-stop-ends-row", SPEC, {"phase": bf.ANSWER, "stats.out_len": 9}, ANS_STOP,
     {"phase": bf.DONE, "stats.finish": bf.FIN_STOP, "stats.stop_len": 1, "fx.record": True}),
    ("answer-last-sampled-token", SPEC, {"phase": bf.ANSWER, "stats.answer_count": 9}, 7,
     {"phase": bf.DONE, "stats.finish": bf.FIN_LENGTH, "stats.answer_count": 10, "fx.record": True}),
    ("answer-exhausted-before-sampling", SPEC, {"phase": bf.ANSWER, "stats.answer_count": 10, "stats.out_len": 9}, 7,
     {"phase": bf.DONE, "stats.finish": bf.FIN_LENGTH, "fx.record": False, "n_sampled": 0, "tail.tok": [2, 3, 4]}),
    ("zero-answer-budget-after-queue", SPEC, {"phase": bf.ANSWER, "limits.max_answer": 0}, 7,
     {"phase": bf.DONE, "fx.record": False}),
    ("done-row-is-frozen", SPEC, {"phase": bf.DONE, "stats.out_len": 4, "tok": 7, "pos": 9}, STOP,
     {"phase": bf.DONE, "tok": 7, "pos": 9, "fx.record": False, "stats.out_len": 4, "n_sampled": 0}),
]


def _get(new, fx, path):
    if path == "queue":
        return queue_of(new)
    obj = fx if path.startswith("fx.") else new
    for part in path.removeprefix("fx.").split("."):
        obj = getattr(obj, part)
    return np.asarray(obj).tolist()


@pytest.mark.parametrize("spec,fields,cand,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_transition(spec, fields, cand, expected):
    new, fx = step(make_row(spec, **fields), cand, spec)
    got = {k: _get(new, fx, k) for k in expected}
    want = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in expected.items()}
    assert got == want


def test_stop_then_ignore_sequence():
    """A full episode: stop (ignored) -> Wait fed over two steps -> stop (accepted) -> thinking end -> answer."""
    r = make_row(**{"stats.out_len": 5, "limits.num_ignore": 1})
    fed = []
    for cand in (STOP, 99, 98, 7, STOP, 97, 96, ANS_STOP):
        r = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], step(r, cand)[0])
        fed.append(int(r.tok[0]))
    assert fed == [10, 11, 98, 7, 20, 21, 96, ANS_STOP]
    assert int(r.phase[0]) == bf.DONE and int(r.stats.finish[0]) == bf.FIN_STOP
    assert int(r.stats.n_ignored[0]) == 1 and int(r.stats.think_len[0]) == 9  # 5 + Wait(2) + 98, 7
    assert int(r.stats.out_len[0]) == 13


def test_rows_are_independent():
    """Rows decided together take the same transitions as alone."""
    cases = [(c[2], c[3]) for c in CASES if c[1] is SPEC]
    rows = [make_row(**f) for f, _ in cases]
    batch = jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *rows)
    cands = jnp.asarray([c for _, c in cases], jnp.int32)
    new, fx = _decide(batch, cands, jnp.full((len(cases),), 20, jnp.int32), SPEC, NL_TABLE)
    for i, (f, c) in enumerate(cases):
        one, one_fx = step(make_row(**f), c)
        got = jax.tree_util.tree_map(lambda x: np.asarray(x)[i], (new, fx))
        jax.tree_util.tree_map(np.testing.assert_array_equal, got, (one, one_fx))
