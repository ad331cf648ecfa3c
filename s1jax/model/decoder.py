"""Llama-family decoder (Qwen2/Qwen2.5, Llama, SmolLM2) in Flax Linen.

Parameter names follow the Hugging Face module tree (``embed_tokens``, ``layers.self_attn.q_proj`` ...) so the
weight maps stay one-to-one, and every parameter carries logical axis names (``vocab``, ``embed``, ``heads``,
``kv_heads``, ``head_dim``, ``mlp``, ``layers``) that ``s1jax.sharding`` maps onto the mesh. The layer stack is one
``nn.scan`` so compile time does not grow with depth, optionally rematerialised.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import NamedSharding

from s1jax.model.config import ModelConfig
from s1jax.model.kv_cache import KVCache, append, old_slots_mask, read_length
from s1jax.sharding import DEFAULT_RULES, logical_to_spec

__all__ = ["Decoder", "rope_cos_sin", "chunked_attention", "cached_attention", "SegmentMask", "REMAT_POLICIES"]

Array = jax.Array

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _init(axes: tuple[str, ...], base=nn.initializers.normal(0.02)):
    return nn.with_logical_partitioning(base, axes)


def rope_cos_sin(positions: Array, head_dim: int, theta: float) -> tuple[Array, Array]:
    """HF rotate-half RoPE tables. positions: [batch, seq] -> cos, sin: [batch, seq, head_dim] (fp32)."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))  # [head_dim/2]
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [batch, seq, head_dim/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)  # [batch, seq, head_dim]
    return jnp.cos(emb), jnp.sin(emb)


def _apply_rope(x: Array, cos: Array, sin: Array) -> Array:
    """x: [batch, seq, heads, head_dim]; rotation computed in fp32, returned in x's dtype (as HF does)."""
    half = x.shape[-1] // 2
    x32 = x.astype(jnp.float32)
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * cos[:, :, None, :] + rotated * sin[:, :, None, :]).astype(x.dtype)


class RMSNorm(nn.Module):
    eps: float
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param("scale", _init(("embed",), nn.initializers.ones), (x.shape[-1],), self.param_dtype)
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return scale.astype(self.dtype) * normed.astype(self.dtype)


class Attention(nn.Module):
    config: ModelConfig
    dtype: Any
    param_dtype: Any
    attention_impl: str | None = None

    @nn.compact
    def __call__(self, x, cos, sin, mask, cache_kv, layer, read_len):
        c = self.config

        def proj(name: str, heads: int, heads_axis: str, bias: bool):
            return nn.DenseGeneral(
                features=(heads, c.head_dim),
                use_bias=bias,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=_init(("embed", heads_axis, "head_dim")),
                bias_init=_init((heads_axis, "head_dim"), nn.initializers.zeros),
                name=name,
            )(x)

        q = proj("q_proj", c.num_heads, "heads", c.attention_bias)  # [batch, seq, heads, head_dim]
        k = proj("k_proj", c.num_kv_heads, "kv_heads", c.attention_bias)  # [batch, seq, kv_heads, head_dim]
        v = proj("v_proj", c.num_kv_heads, "kv_heads", c.attention_bias)
        q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)

        new_kv = None
        if cache_kv is not None:
            # mask = (old slots [batch, max_len], new tokens [batch, new]) valid masks; the cache (every layer's, this
            # one at ``layer``) is read only, in blocks up to read_len slots, and only the new keys/values leave the
            # layer (the decoder appends them in one update).
            out = cached_attention(q, cache_kv[0], cache_kv[1], mask[0], k, v, mask[1], read_len, layer=layer)
            new_kv = (k, v)
        elif self.attention_impl == "chunked":
            out = chunked_attention(q, k, v, mask)  # [batch, seq, heads, head_dim]
        else:
            impl = None if self.attention_impl in (None, "", "xla") else self.attention_impl
            full_mask = mask.full() if isinstance(mask, SegmentMask) else mask
            out = jax.nn.dot_product_attention(
                q, k, v, mask=full_mask, is_causal=full_mask is None, implementation=impl
            )  # [batch, seq, heads, head_dim]
        out = nn.DenseGeneral(
            features=c.hidden_size,
            axis=(-2, -1),
            use_bias=False,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=_init(("heads", "head_dim", "embed")),
            name="o_proj",
        )(out)
        return out, new_kv


class MLP(nn.Module):
    config: ModelConfig
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self.config

        def dense(name: str, features: int, axes: tuple[str, str]):
            return nn.Dense(
                features,
                use_bias=c.mlp_bias,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=_init(axes),
                bias_init=_init(axes[1:], nn.initializers.zeros),
                name=name,
            )

        gate = dense("gate_proj", c.intermediate_size, ("embed", "mlp"))(x)  # [batch, seq, mlp]
        up = dense("up_proj", c.intermediate_size, ("embed", "mlp"))(x)
        return dense("down_proj", c.hidden_size, ("mlp", "embed"))(nn.silu(gate) * up)


ACTIVATION_AXES = ("activation_batch", "activation_length", "activation_embed")


def constrain(x: Array, names: tuple[str | None, ...], mesh: Any, rules: Any) -> Array:
    """Pin an activation's layout on ``mesh`` by logical axis names, with the same shape-aware rules as the
    parameters (a dim that does not divide its mesh axes stays replicated). A no-op without a mesh, so the module
    runs unchanged on one device and inside programs that place their own shardings."""
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_to_spec(names, x.shape, mesh, rules)))


class DecoderLayer(nn.Module):
    """One pre-norm block; signature ``(carry, layer index, *broadcast) -> (carry, new_kv)`` for ``nn.scan``.

    The KV cache is broadcast whole (not scanned over): slicing a layer out of it per scan step would copy the whole
    layer's capacity each step; the attention reads only the blocks it needs from the stacked buffer."""

    config: ModelConfig
    dtype: Any
    param_dtype: Any
    attention_impl: str | None = None
    mesh: Any = None
    rules: Any = DEFAULT_RULES

    @nn.compact
    def __call__(self, x, layer, cos, sin, mask, read_len, cache_kv):
        c = self.config
        h = RMSNorm(c.rms_norm_eps, self.dtype, self.param_dtype, name="input_layernorm")(x)
        attn, new_kv = Attention(c, self.dtype, self.param_dtype, self.attention_impl, name="self_attn")(
            h, cos, sin, mask, cache_kv, layer, read_len
        )
        x = x + attn
        h = RMSNorm(c.rms_norm_eps, self.dtype, self.param_dtype, name="post_attention_layernorm")(x)
        x = x + MLP(c, self.dtype, self.param_dtype, name="mlp")(h)
        x = constrain(x, ACTIVATION_AXES, self.mesh, self.rules)
        return x, new_kv


class Decoder(nn.Module):
    """The causal LM. ``__call__`` returns ``(logits or hidden, new_cache)``.

    Without a cache it is a full forward pass: pure causal attention when ``attention_mask`` and ``segment_ids``
    are None (the fast path for right-padded training batches), else causal & key-valid & same-segment. With a
    cache the new tokens are written at ``cache.index`` (shared or per row) and attend to every valid slot at or
    before their own; attention reads only the slots written by the rows that feed real tokens (``read_length``).
    """

    config: ModelConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    remat_policy: str = "none"
    attention_impl: str | None = None  # None/"xla", "cudnn" (fused flash attention, NVIDIA) or "chunked"
    mesh: Any = None  # with a mesh, activations are pinned to their logical sharding (see ``constrain``)
    rules: Any = DEFAULT_RULES

    def setup(self) -> None:
        c = self.config
        self.embed_tokens = nn.Embed(
            c.vocab_size,
            c.hidden_size,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            embedding_init=_init(("vocab", "embed")),
        )
        layer_cls = DecoderLayer
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"unknown remat_policy {self.remat_policy!r}; choose from {sorted(REMAT_POLICIES)}")
        if self.remat_policy != "none":
            layer_cls = nn.remat(layer_cls, policy=REMAT_POLICIES[self.remat_policy], prevent_cse=False)
        self.layers = nn.scan(
            layer_cls,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
            length=c.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(c, self.dtype, self.param_dtype, self.attention_impl, self.mesh, self.rules)
        self.norm = RMSNorm(c.rms_norm_eps, self.dtype, self.param_dtype)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Dense(
                c.vocab_size,
                use_bias=False,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=_init(("embed", "vocab")),
            )

    def __call__(
        self,
        input_ids: Array,  # [batch, seq] int32
        positions: Array,  # [batch, seq] int32, RoPE positions
        attention_mask: Array | None = None,  # [batch, seq]: 1 for real tokens
        segment_ids: Array | None = None,  # [batch, seq]: packed-example ids, 0 = padding
        cache: KVCache | None = None,
        return_hidden: bool = False,
    ) -> tuple[Array, KVCache | None]:
        x = self.embed_tokens(input_ids)  # [batch, seq, embed]
        x = constrain(x, ACTIVATION_AXES, self.mesh, self.rules)
        cos, sin = rope_cos_sin(positions, self.config.head_dim, self.config.rope_theta)

        if cache is not None:
            token_mask = jnp.ones(input_ids.shape, jnp.bool_) if attention_mask is None else attention_mask.astype(bool)
            masks = (old_slots_mask(cache), token_mask)
            read_len = read_length(cache, token_mask)
            layers = jnp.arange(self.config.num_layers, dtype=jnp.int32)
            x, (k_new, v_new) = self.layers(x, layers, cos, sin, masks, read_len, (cache.k, cache.v))
            new_cache = append(cache, k_new, v_new, token_mask)  # k_new: [layers, batch, new, kv_heads, head_dim]
        else:
            mask = _full_mask(attention_mask, segment_ids)
            layers = jnp.arange(self.config.num_layers, dtype=jnp.int32)
            x, _ = self.layers(x, layers, cos, sin, mask, jnp.zeros((), jnp.int32), None)
            new_cache = None

        x = self.norm(x)  # [batch, seq, embed]
        if return_hidden:
            return x, new_cache
        return self.logits(x), new_cache

    def logits(self, hidden: Array) -> Array:
        """[batch, seq, embed] -> fp32 logits [batch, seq, vocab]."""
        if self.config.tie_word_embeddings:
            out = self.embed_tokens.attend(hidden)
        else:
            out = self.lm_head(hidden)
        return out.astype(jnp.float32)


DECODE_ATTENTION_BLOCK = 256  # cache slots per key block of the cached (prefill / decode) attention


def cached_attention(q: Array, k_old: Array, v_old: Array, old_valid: Array, k_new: Array, v_new: Array,
                     new_valid: Array, read_len: Array | None = None, block: int = DECODE_ATTENTION_BLOCK,
                     layer: Array | None = None) -> Array:
    """Attention of new tokens over the cache (read only) and over themselves (causal), with an online softmax.

    q: [batch, new, heads, head_dim]; k_old, v_old: [batch, max_len, kv_heads, head_dim]; old_valid: [batch, max_len];
    k_new, v_new: [batch, new, kv_heads, head_dim]; new_valid: [batch, new]. Returns [batch, new, heads, head_dim].
    With ``layer`` (a traced index), k_old / v_old are every layer's cache [layers, batch, max_len, kv_heads,
    head_dim] and only this layer's blocks are read (no per-layer copy of the whole capacity).

    The cache is read in key blocks of ``block`` slots, only up to ``read_len`` (a traced scalar: the loop's trip
    count is dynamic), so a decode step costs what the rows have written, not the cache capacity. Never
    concatenating keys is what keeps the cache from being copied on every decode step. Queries that may attend to
    nothing (padding) get zeros, not NaNs.
    """
    batch, new, heads, head_dim = q.shape
    max_len, kv_heads = k_old.shape[-3], k_old.shape[-2]
    qg = q.reshape(batch, new, kv_heads, heads // kv_heads, head_dim)  # [batch, new, kv, group, head_dim]
    scale = head_dim**-0.5
    neg = jnp.finfo(jnp.float32).min
    f32 = jnp.float32

    def update(carry, keys, values, allowed):
        """Fold one key block into (max, denominator, accumulator). allowed: [batch, 1, 1, new, keys]."""
        m, l, acc = carry  # [b, kv, g, new], [b, kv, g, new], [b, kv, g, new, head_dim]
        s = jnp.einsum("btkgd,bskd->bkgts", qg, keys.astype(q.dtype), preferred_element_type=f32) * scale
        m_new = jnp.maximum(m, jnp.max(jnp.where(allowed, s, neg), axis=-1))
        p = jnp.where(allowed, jnp.exp(s - m_new[..., None]), 0.0)  # [b, kv, g, new, keys]
        corr = jnp.exp(m - m_new)
        pv = jnp.einsum("bkgts,bskd->bkgtd", p.astype(values.dtype), values, preferred_element_type=f32)
        return m_new, l * corr + jnp.sum(p, axis=-1), acc * corr[..., None] + pv

    stats = (batch, kv_heads, heads // kv_heads, new)
    carry = (jnp.full(stats, neg, f32), jnp.zeros(stats, f32), jnp.zeros(stats + (head_dim,), f32))
    causal = jnp.tril(jnp.ones((new, new), jnp.bool_))
    carry = update(carry, k_new, v_new, (causal[None] & new_valid[:, None, :])[:, None, None])

    block = min(block, max_len)
    if read_len is None:
        read_len = jnp.asarray(max_len, jnp.int32)
    num_blocks = (jnp.minimum(read_len, max_len) + block - 1) // block

    def read_block(cache: Array, start: Array) -> Array:
        if layer is None:
            return jax.lax.dynamic_slice_in_dim(cache, start, block, axis=1)
        size = (1, cache.shape[1], block) + cache.shape[3:]
        return jax.lax.dynamic_slice(cache, (layer, 0, start, 0, 0), size)[0]

    def body(i, carry):
        nominal = i * block
        start = jnp.minimum(nominal, max_len - block)  # the last block is shifted back; overlap is masked
        keys, values = read_block(k_old, start), read_block(v_old, start)  # [batch, block, kv_heads, head_dim]
        valid = jax.lax.dynamic_slice_in_dim(old_valid, start, block, axis=1)  # [batch, block]
        valid = valid & (start + jnp.arange(block) >= nominal)[None, :]
        values = jnp.where(valid[:, :, None, None], values, 0)  # unwritten slots may hold anything, even NaN
        return update(carry, keys, values, valid[:, None, None, None, :])

    _, l, acc = jax.lax.fori_loop(0, num_blocks, body, carry)
    out = acc / jnp.where(l > 0, l, 1.0)[..., None]  # [batch, kv, group, new, head_dim]
    return out.transpose(0, 3, 1, 2, 4).reshape(batch, new, heads, head_dim).astype(q.dtype)


@struct.dataclass
class SegmentMask:
    """Causal & same-segment & key-valid attention, kept as [batch, seq] segment ids instead of a [seq, seq] mask
    so memory-efficient attention can build each block's mask on the fly."""

    segment_ids: Array  # [batch, seq] int32, 0 = padding

    def block(self, q_start: Array, q_len: int) -> Array:
        """Mask of queries [q_start, q_start + q_len) over all keys: [batch, 1, q_len, seq]."""
        seg = self.segment_ids
        q_seg = jax.lax.dynamic_slice_in_dim(seg, q_start, q_len, axis=1)  # [batch, q_len]
        q_idx = q_start + jnp.arange(q_len)
        causal = jnp.arange(seg.shape[1])[None, :] <= q_idx[:, None]  # [q_len, seq]
        same = (q_seg[:, :, None] == seg[:, None, :]) & (seg > 0)[:, None, :]  # [batch, q_len, seq]
        return (causal[None] & same)[:, None, :, :]

    def full(self) -> Array:
        return self.block(jnp.zeros((), jnp.int32), self.segment_ids.shape[1])


def _full_mask(attention_mask: Array | None, segment_ids: Array | None) -> SegmentMask | None:
    """None for pure causal attention, else the segment description of the mask."""
    if attention_mask is None and segment_ids is None:
        return None
    if segment_ids is None:
        segment_ids = attention_mask.astype(jnp.int32)
    return SegmentMask(segment_ids.astype(jnp.int32))


CHUNKED_ATTENTION_BLOCK = 512


def chunked_attention(q: Array, k: Array, v: Array, mask: SegmentMask | None, block: int = CHUNKED_ATTENTION_BLOCK) -> Array:
    """Exact causal attention computed one query block at a time, each block rematerialised in the backward pass.

    Peak memory is [batch, heads, block, seq] scores instead of [batch, heads, seq, seq]: at seq 32768 this is
    what makes s1's block size fit on accelerators without a fused flash-attention kernel (e.g. TPU).
    q: [batch, seq, heads, head_dim]; k, v: [batch, seq, kv_heads, head_dim] -> [batch, seq, heads, head_dim].
    """
    batch, seq, heads, head_dim = q.shape
    kv_heads = k.shape[2]
    block = min(block, seq)
    pad = (-seq) % block
    if pad:  # padded queries are discarded; padded keys are never attended (causal: they come last)
        q = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0)))
    num_blocks = (seq + pad) // block
    scale = head_dim**-0.5
    qb = q.reshape(batch, num_blocks, block, kv_heads, heads // kv_heads, head_dim).swapaxes(0, 1)
    if mask is not None and pad:
        mask = SegmentMask(jnp.pad(mask.segment_ids, ((0, 0), (0, pad))))
        k_pad = ((0, 0), (0, pad), (0, 0), (0, 0))
        k, v = jnp.pad(k, k_pad), jnp.pad(v, k_pad)
    keys = k.shape[1]

    @jax.checkpoint
    def one_block(index: Array, q_block: Array) -> Array:  # q_block: [batch, block, kv, group, head_dim]
        scores = jnp.einsum("bqkgd,bskd->bkgqs", q_block, k, preferred_element_type=jnp.float32) * scale
        if mask is None:
            q_idx = index * block + jnp.arange(block)
            allowed = (jnp.arange(keys)[None, :] <= q_idx[:, None])[None, None, None]  # [1, 1, 1, block, keys]
        else:
            allowed = mask.block(index * block, block)[:, :, None]  # [batch, 1, 1, block, keys]
        scores = jnp.where(allowed, scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        return jnp.einsum("bkgqs,bskd->bqkgd", probs, v)

    out = jax.lax.map(lambda args: one_block(*args), (jnp.arange(num_blocks), qb))  # [blocks, batch, block, kv, g, d]
    out = out.swapaxes(0, 1).reshape(batch, num_blocks * block, heads, head_dim)
    return out[:, :seq]
