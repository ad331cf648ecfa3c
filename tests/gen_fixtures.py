"""Fixtures for the generation tests: a tiny byte-level BPE tokenizer with the s1 ChatML specials, and a tiny random
model sized to it whose weights are nudged so that greedy decoding sometimes emits the stop token."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
    "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>think\nLet me think. 1 + 2 = 3. Wait, let me check again.\n",
    "<|im_start|>answer\nFinal Answer: The answer is 3.<|im_end|>\n",
    "think answer Wait Final Answer: Answer: the sum of two numbers is 20 and their difference is 4.",
    "How many r in raspberry? There are three r letters. Hmm, so the answer is 3. Wait Wait Final",
]
QUESTIONS = [
    "What is 1 + 2?",
    "How many r in raspberry?",
    "the sum of two numbers is 20",
    "Let me check",
    "Final answer is 3",
    "Hmm",
]


@functools.lru_cache(maxsize=None)
def tokenizer_dir() -> str:
    """Train (deterministically) and save a tiny tokenizer.json; returns its directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    d = pathlib.Path(tempfile.mkdtemp(prefix="s1jax_gen_tok_"))
    tok.save(str(d / "tokenizer.json"))
    return str(d)


@functools.lru_cache(maxsize=None)
def load_tok():
    import s1jax

    return s1jax.load_tokenizer(tokenizer_dir())


@functools.lru_cache(maxsize=None)
def tiny_model(stop_scale: float = 0.4, seed: int = 0):
    """Random tiny Qwen2-layout model (fp32) with a vocab padded beyond the tokenizer's size.

    The layer weights are scaled up (x6) so the output depends on the context, the untied head is sharpened (x5)
    so greedy decoding has clear winners (no near-ties between the engine and the reference), and the stop token's
    head column is redrawn with scale ``stop_scale`` so that greedy decoding emits ``<|im_start|>`` every few
    dozen tokens. Padding rows (ids >= tokenizer size) get huge columns: a broken vocab mask would pick them.
    """
    import s1jax
    from s1jax.model.presets import preset_config

    tok = load_tok()
    vocab = int(np.ceil((tok.vocab_size + 5) / 32) * 32)  # padding rows beyond the tokenizer
    config = dataclasses.replace(preset_config("tiny"), vocab_size=vocab, tie_word_embeddings=False,
                                 eos_token_id=tok.token_to_id("<|im_end|>"))
    model = s1jax.load_model(config, dtype="float32", seed=seed)
    params = dict(model.params)
    params["layers"] = jax.tree_util.tree_map(lambda x: x * 6.0 if x.ndim >= 3 else x, params["layers"])
    rng = np.random.default_rng(seed + 1)
    kernel = np.array(params["lm_head"]["kernel"]) * 5.0  # [embed, vocab]
    kernel[:, tok.token_to_id("<|im_start|>")] = stop_scale * rng.standard_normal(kernel.shape[0])
    kernel[:, tok.vocab_size:] = 50.0 * rng.standard_normal((kernel.shape[0], vocab - tok.vocab_size))
    params["lm_head"] = {"kernel": jnp.asarray(kernel, jnp.float32)}
    return dataclasses.replace(model, params=params)


# The tiny tokenizer and model as pytest fixtures, for the generation test files to import
# (``from gen_fixtures import model_fixture, tok_fixture``): the parameters are named ``tok`` and ``model``.
@pytest.fixture(scope="module", name="tok")
def tok_fixture():
    return load_tok()


@pytest.fixture(scope="module", name="model")
def model_fixture():
    return tiny_model()
