"""Sampling: vocabulary-padding mask under top-k/top-p, determinism per seed, temperature 0 == argmax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import s1jax
from s1jax.inference.sampling import Sampling, draw_keys, mask_vocab, row_keys, sample_logits
from gen_fixtures import QUESTIONS, load_tok, tiny_model

VOCAB, REAL = 64, 50


def _logits(seed=0, rows=8):
    x = np.random.default_rng(seed).standard_normal((rows, VOCAB)).astype(np.float32)
    x[:, REAL:] += 100.0  # padding ids would win everything if they were not masked
    return jnp.asarray(x)


def _draws(sampling: Sampling, n_draws=200, rows=8):
    logits = mask_vocab(_logits(rows=rows), REAL)
    keys = row_keys(sampling.seed, np.arange(rows))
    fn = jax.jit(lambda k, c: sample_logits(logits, draw_keys(k, c), sampling))
    return np.stack([np.asarray(fn(keys, jnp.full((rows,), i, jnp.int32))) for i in range(n_draws)])


@pytest.mark.parametrize("sampling", [
    Sampling(temperature=1.0),
    Sampling(temperature=2.0, top_k=60),
    Sampling(temperature=1.5, top_p=0.9),
    Sampling(temperature=3.0, top_k=63, top_p=0.99),
    Sampling(temperature=0.7, top_k=5),
])
def test_masked_ids_never_drawn(sampling):
    draws = _draws(sampling)
    assert draws.max() < REAL
    assert len(np.unique(draws)) > 1  # actually random


def test_top_k_and_top_p_restrict_support():
    logits = np.asarray(mask_vocab(_logits(rows=1), REAL))[0]
    order = np.argsort(-logits)
    draws = _draws(Sampling(temperature=1.0, top_k=3, seed=1), rows=1)
    assert set(np.unique(draws)) <= set(order[:3].tolist())
    order = order[order < REAL]
    probs = np.exp(logits[order] - logits[order].max())
    probs /= probs.sum()
    nucleus = order[: int(np.searchsorted(np.cumsum(probs), 0.5) + 1)]
    draws = _draws(Sampling(temperature=1.0, top_p=0.5, seed=2), rows=1)
    assert set(np.unique(draws)) <= set(nucleus.tolist())


def test_same_seed_same_draws_and_seed_matters():
    a = _draws(Sampling(temperature=1.0, top_p=0.95, seed=3), n_draws=20)
    b = _draws(Sampling(temperature=1.0, top_p=0.95, seed=3), n_draws=20)
    c = _draws(Sampling(temperature=1.0, top_p=0.95, seed=4), n_draws=20)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_temperature_zero_is_argmax():
    logits = mask_vocab(_logits(), REAL)
    keys = row_keys(0, np.arange(8))
    got = sample_logits(logits, keys, Sampling(temperature=0.0, top_k=3, top_p=0.5))
    np.testing.assert_array_equal(np.asarray(got), np.argmax(np.asarray(logits), axis=-1))
    assert np.asarray(got).max() < REAL


def test_sampling_validation():
    for bad in (dict(temperature=-1.0), dict(top_p=0.0), dict(top_p=1.5), dict(top_k=-1)):
        with pytest.raises(ValueError):
            Sampling(**bad)


def test_generate_sampled_is_reproducible_and_in_vocab():
    tok, model = load_tok(), tiny_model()
    budget = s1jax.Budget(max_thinking_tokens=20, num_ignore=1, max_answer_tokens=6)
    s = Sampling(temperature=1.0, top_p=0.9, seed=7)
    a = s1jax.generate(model, tok, QUESTIONS[:3], budget=budget, sampling=s, progress=False)
    b = s1jax.generate(model, tok, QUESTIONS[:3], budget=budget, sampling=s, progress=False)
    assert [r.token_ids for r in a] == [r.token_ids for r in b]
    assert all(max(r.token_ids) < tok.vocab_size for r in a)
    # A row's draws do not depend on its batch neighbours (per-row keys by question index).
    c = s1jax.generate(model, tok, QUESTIONS[:3], budget=budget, sampling=s, batch_size=1, progress=False)
    assert [r.token_ids for r in a] == [r.token_ids for r in c]
    greedy = s1jax.generate(model, tok, QUESTIONS[:3], budget=budget, progress=False)
    assert [r.token_ids for r in a] != [r.token_ids for r in greedy]
