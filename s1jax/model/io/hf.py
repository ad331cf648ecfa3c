"""Hugging Face safetensors import/export, and the tensor-by-tensor placement every importer shares.

Import: each safetensors file is memory-mapped and its header parsed here (so BF16/F16/F32 all read the same way,
without torch), every HF tensor becomes a lazy NumPy *view* in our layout (reshape/transpose of the mmap), and each
parameter is built with ``jax.make_array_from_callback`` directly in its target ``NamedSharding``: the callback for a
device slices the view, so only that device's shard is read from disk and copied. Stacked layer parameters
``[L, ...]`` are filled layer by layer from the per-layer HF tensors. Host memory peaks at the shards of *one*
parameter that this process addresses (cast to ``param_dtype``), never the whole model.

Export: config.json + safetensors written by our own streaming writer (header first, then tensor bytes), one
parameter gathered at a time (``s1jax.sharding.gather_pytree``), so host memory peaks at one full (stacked)
parameter. Files go to a temporary sibling directory that is renamed into place only when everything is written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from s1jax.model.config import ModelConfig
from s1jax.model.io.common import atomic_output_dir, copy_tokenizer_files
from s1jax.model.params import param_shapes, target_shardings
from s1jax import sharding

__all__ = [
    "ParamEntry",
    "param_entries",
    "assemble_params",
    "SafetensorsSource",
    "load_hf",
    "read_hf_config",
    "save_hf",
    "write_safetensors",
]

# ----------------------------------------------------------------------------------------------- key map


@dataclasses.dataclass(frozen=True)
class ParamEntry:
    """One parameter of our tree and the HF tensor(s) it comes from (one per layer when ``stacked``)."""

    path: tuple[str, ...]  # path in the Flax params tree
    hf_name: str  # HF tensor name; ``{l}`` is the layer index for stacked parameters
    hf_shape: tuple[int, ...]  # shape of one HF tensor
    to_ours: Callable[[np.ndarray], np.ndarray]  # HF layout -> our layout (views only)
    to_hf: Callable[[np.ndarray], np.ndarray]  # our layout (one layer) -> HF layout
    stacked: bool = False

    def hf_names(self, num_layers: int) -> list[str]:
        return [self.hf_name.format(l=l) for l in range(num_layers)] if self.stacked else [self.hf_name]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _transpose(x: np.ndarray) -> np.ndarray:
    return x.T


def param_entries(config: ModelConfig) -> list[ParamEntry]:
    """The full HF <-> s1jax key map for ``config`` (Qwen2 and Llama share it; biases depend on the config)."""
    c = config
    e, m, h, k, d, v = c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size
    layer = "model.layers.{l}."
    out = [ParamEntry(("embed_tokens", "embedding"), "model.embed_tokens.weight", (v, e), _identity, _identity)]

    def stacked(path: tuple[str, ...], name: str, shape: tuple[int, ...], to_ours, to_hf) -> None:
        out.append(ParamEntry(("layers",) + path, layer + name, shape, to_ours, to_hf, stacked=True))

    for norm in ("input_layernorm", "post_attention_layernorm"):
        stacked((norm, "scale"), f"{norm}.weight", (e,), _identity, _identity)
    for proj, heads in (("q_proj", h), ("k_proj", k), ("v_proj", k)):
        # HF [heads*head_dim, embed] <-> ours [embed, heads, head_dim]
        stacked(
            ("self_attn", proj, "kernel"),
            f"self_attn.{proj}.weight",
            (heads * d, e),
            lambda w, n=heads: w.reshape(n, d, e).transpose(2, 0, 1),
            lambda x, n=heads: x.transpose(1, 2, 0).reshape(n * d, e),
        )
        if c.attention_bias:
            stacked(
                ("self_attn", proj, "bias"),
                f"self_attn.{proj}.bias",
                (heads * d,),
                lambda w, n=heads: w.reshape(n, d),
                lambda x, n=heads: x.reshape(n * d),
            )
    # HF [embed, heads*head_dim] <-> ours [heads, head_dim, embed]
    stacked(
        ("self_attn", "o_proj", "kernel"),
        "self_attn.o_proj.weight",
        (e, h * d),
        lambda w: w.reshape(e, h, d).transpose(1, 2, 0),
        lambda x: x.transpose(2, 0, 1).reshape(e, h * d),
    )
    for proj, shape in (("gate_proj", (m, e)), ("up_proj", (m, e)), ("down_proj", (e, m))):
        stacked(("mlp", proj, "kernel"), f"mlp.{proj}.weight", shape, _transpose, _transpose)
        if c.mlp_bias:
            stacked(("mlp", proj, "bias"), f"mlp.{proj}.bias", (shape[0],), _identity, _identity)
    out.append(ParamEntry(("norm", "scale"), "model.norm.weight", (e,), _identity, _identity))
    if not c.tie_word_embeddings:
        out.append(ParamEntry(("lm_head", "kernel"), "lm_head.weight", (v, e), _transpose, _transpose))
    return out


# Tensors a checkpoint may carry that we do not use.
def _ignorable(name: str, config: ModelConfig) -> bool:
    return name.endswith("rotary_emb.inv_freq") or (config.tie_word_embeddings and name == "lm_head.weight")


# ----------------------------------------------------------------------------------------------- placement


def _tree_get(tree: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def _tree_set(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def validate_source(source: Any, config: ModelConfig, entries: list[ParamEntry], what: str) -> None:
    """Every expected tensor present with the right shape; no unexpected tensors (e.g. more layers than config)."""
    missing, expected = [], set()
    for entry in entries:
        for name in entry.hf_names(config.num_layers):
            expected.add(name)
            shape = source.shape(name)
            if shape is None:
                missing.append(name)
            elif tuple(shape) != tuple(entry.hf_shape):
                raise ValueError(
                    f"{what}: tensor {name!r} has shape {tuple(shape)}, expected {tuple(entry.hf_shape)} for {config}"
                )
    if missing:
        more = f" (and {len(missing) - 8} more)" if len(missing) > 8 else ""
        raise ValueError(f"{what}: missing tensor(s) {missing[:8]}{more}")
    unexpected = sorted(n for n in source.names() if n not in expected and not _ignorable(n, config))
    if unexpected:
        more = f" (and {len(unexpected) - 8} more)" if len(unexpected) > 8 else ""
        raise ValueError(f"{what}: unexpected tensor(s) {unexpected[:8]}{more}; does config.json match the weights?")


def _slice_len(s: slice, size: int) -> int:
    return len(range(*s.indices(size)))


def assemble_params(
    config: ModelConfig,
    source: Any,
    *,
    param_dtype: Any,
    mesh: Mesh | None,
    rules: Any,
    what: str,
) -> dict:
    """Build the params tree from ``source`` (``names()``, ``shape(name)``, ``read(name)`` -> array-like in HF
    layout; optional ``release()`` called after each parameter), each leaf placed directly in its sharding."""
    entries = param_entries(config)
    validate_source(source, config, entries, what)
    dtype = jnp.dtype(param_dtype)
    shapes = param_shapes(config, dtype)
    shardings = target_shardings(config, mesh, rules)
    params: dict = {}
    for entry in entries:
        shape = tuple(_tree_get(shapes, entry.path).shape)

        def callback(index: tuple[slice, ...], entry: ParamEntry = entry, shape: tuple[int, ...] = shape) -> np.ndarray:
            index = tuple(index) + (slice(None),) * (len(shape) - len(tuple(index)))
            if not entry.stacked:
                return np.asarray(entry.to_ours(source.read(entry.hf_name))[index]).astype(dtype)
            layers = range(*index[0].indices(shape[0]))
            out = np.empty((len(layers),) + tuple(_slice_len(s, n) for s, n in zip(index[1:], shape[1:])), dtype)
            for i, l in enumerate(layers):
                out[i] = entry.to_ours(source.read(entry.hf_name.format(l=l)))[index[1:]]
            return out

        array = jax.make_array_from_callback(shape, _tree_get(shardings, entry.path), callback)
        _tree_set(params, entry.path, array)
        if hasattr(source, "release"):
            source.release()
    return params


# ----------------------------------------------------------------------------------------------- safetensors

_ST_DTYPES: dict[str, Any] = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": jnp.bfloat16,  # ml_dtypes.bfloat16: the same bytes as torch.bfloat16
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def _read_header(path: str) -> tuple[int, dict]:
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path!r} is not a safetensors file (too short)")
        n = int.from_bytes(raw, "little")
        if n <= 0 or n > 100 * 2**20:
            raise ValueError(f"{path!r} is not a safetensors file (header length {n})")
        try:
            header = json.loads(f.read(n))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path!r}: malformed safetensors header: {e}") from e
    return 8 + n, header


def _check_extent(path: str, name: str, info: dict, data_bytes: int) -> None:
    """A tensor's byte range must hold exactly its shape x dtype and lie inside the file: a truncated download or a
    corrupt header is reported here, naming the file and the tensor, before any weight is read."""
    try:
        begin, end = (int(x) for x in info["data_offsets"])
        shape = tuple(int(x) for x in info["shape"])
        dtype = _ST_DTYPES.get(info["dtype"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path!r}: malformed safetensors header entry for tensor {name!r}: {info!r}") from e
    if dtype is not None and end - begin != math.prod(shape) * np.dtype(dtype).itemsize:
        raise ValueError(
            f"{path!r}: tensor {name!r} {list(shape)} {info['dtype']} needs {math.prod(shape) * np.dtype(dtype).itemsize} "
            f"bytes but its header gives {end - begin}; the file is corrupt (download it again)"
        )
    if end > data_bytes:
        raise ValueError(
            f"{path!r}: tensor {name!r} ends at byte {end} of the data section, but the file holds only {data_bytes} "
            f"data bytes ({end - data_bytes} missing); the file is truncated (download it again)"
        )


class SafetensorsSource:
    """Lazy tensors of one HF checkpoint (single file or sharded with ``model.safetensors.index.json``)."""

    def __init__(self, directory: str):
        single = os.path.join(directory, "model.safetensors")
        index = os.path.join(directory, "model.safetensors.index.json")
        if os.path.isfile(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            files = sorted(set(weight_map.values()))
        elif os.path.isfile(single):
            files = ["model.safetensors"]
        else:
            raise FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {directory!r}")
        self._entries: dict[str, tuple[str, int, dict]] = {}
        self._maps: dict[str, np.memmap] = {}
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"safetensors shard {path!r} (listed in the index) does not exist")
            offset, header = _read_header(path)
            data_bytes = os.path.getsize(path) - offset
            for tensor, info in header.items():
                if tensor != "__metadata__":
                    _check_extent(path, tensor, info, data_bytes)
                    self._entries[tensor] = (path, offset, info)

    def names(self) -> list[str]:
        return list(self._entries)

    def shape(self, name: str) -> tuple[int, ...] | None:
        entry = self._entries.get(name)
        return None if entry is None else tuple(entry[2]["shape"])

    def read(self, name: str) -> np.ndarray:
        path, offset, info = self._entries[name]
        if info["dtype"] not in _ST_DTYPES:
            raise ValueError(f"tensor {name!r} in {path!r} has unsupported dtype {info['dtype']}")
        if path not in self._maps:
            self._maps[path] = np.memmap(path, dtype=np.uint8, mode="r")
        begin, end = info["data_offsets"]
        raw = self._maps[path][offset + begin : offset + end]
        return raw.view(_ST_DTYPES[info["dtype"]]).reshape(info["shape"])


def write_safetensors(path: str, tensors: list[tuple[str, tuple[int, ...], Any, Callable[[], np.ndarray]]], write: bool = True) -> None:
    """Stream ``(name, shape, dtype, produce)`` tensors into one safetensors file (header first, then data).

    ``produce`` is called for every tensor even when ``write`` is False (other processes must join collectives)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, dtype, _ in tensors:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        header[name] = {"dtype": _ST_NAMES[np.dtype(dtype)], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    f = open(path, "wb") if write else None
    try:
        if f:
            f.write(len(blob).to_bytes(8, "little") + blob)
        for name, shape, dtype, produce in tensors:
            arr = np.ascontiguousarray(produce(), dtype=dtype)
            if arr.shape != tuple(shape):
                raise ValueError(f"tensor {name!r}: produced shape {arr.shape}, header says {tuple(shape)}")
            if f:
                f.write(arr.tobytes())
    finally:
        if f:
            f.close()


# ----------------------------------------------------------------------------------------------- load / save


def read_hf_config(path: str) -> ModelConfig:
    """The architecture in ``<path>/config.json`` (a malformed file is named in the error)."""
    return ModelConfig.from_hf_file(path)


def load_hf(path: str, *, param_dtype: Any, mesh: Mesh | None, rules: Any) -> tuple[ModelConfig, dict]:
    config = read_hf_config(path)
    source = SafetensorsSource(path)
    params = assemble_params(config, source, param_dtype=param_dtype, mesh=mesh, rules=rules, what=f"HF checkpoint {path!r}")
    return config, params


def _gathered_layer_producers(params: Any, entries: list[ParamEntry], num_layers: int, dtype: Any) -> Iterable[tuple[str, tuple[int, ...], Any, Callable[[], np.ndarray]]]:
    """(name, hf_shape, dtype, produce) per HF tensor; one parameter is gathered to host at a time."""
    cache: dict[tuple[str, ...], np.ndarray] = {}

    def gathered(path: tuple[str, ...]) -> np.ndarray:
        if path not in cache:
            cache.clear()  # keep one gathered parameter alive at a time
            cache[path] = np.asarray(sharding.gather_pytree(_tree_get(params, path)))
        return cache[path]

    for entry in entries:
        for l, name in enumerate(entry.hf_names(num_layers)):

            def produce(entry: ParamEntry = entry, l: int = l) -> np.ndarray:
                full = gathered(entry.path)
                return entry.to_hf(full[l] if entry.stacked else full).astype(dtype)

            yield name, tuple(entry.hf_shape), dtype, produce


def save_hf(
    model: Any,
    out_dir: str,
    *,
    max_shard_bytes: int = 5 * 2**30,
    dtype: Any = None,
    tokenizer_path: str | None = None,
    overwrite: bool = False,
) -> str:
    """config.json + model.safetensors (or model-0000i-of-0000n.safetensors + index) that transformers loads."""
    config: ModelConfig = model.config
    out_dtype = np.dtype(jnp.dtype(dtype) if dtype is not None else model.param_dtype)
    if np.dtype(out_dtype) not in _ST_NAMES:
        raise ValueError(f"cannot export dtype {out_dtype}")
    # The params must match the config exactly before anything is written.
    want = param_shapes(config, out_dtype)
    got_struct = jax.tree_util.tree_structure(model.params)
    if got_struct != jax.tree_util.tree_structure(want):
        raise ValueError(f"model.params do not match the parameter tree of {config}")
    for (path, w), g in zip(jax.tree_util.tree_flatten_with_path(want)[0], jax.tree_util.tree_leaves(model.params)):
        if tuple(w.shape) != tuple(g.shape):
            raise ValueError(f"parameter {jax.tree_util.keystr(path)} has shape {tuple(g.shape)}, expected {tuple(w.shape)}")

    entries = param_entries(config)
    tensors = list(_gathered_layer_producers(model.params, entries, config.num_layers, out_dtype))
    # Greedy sharding in order (layers stay together), each file at most max_shard_bytes (unless one tensor is bigger).
    shards: list[list] = [[]]
    size = 0
    total = 0
    for t in tensors:
        nbytes = math.prod(t[1]) * out_dtype.itemsize
        total += nbytes
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += nbytes
    hf_config = config.to_hf_dict()
    torch_dtype = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}.get(out_dtype.name, "float32")
    hf_config["torch_dtype"] = torch_dtype
    hf_config["dtype"] = torch_dtype
    write = jax.process_index() == 0
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        if write:
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump(hf_config, f, indent=2, sort_keys=True)
        if len(shards) == 1:
            write_safetensors(os.path.join(tmp, "model.safetensors"), shards[0], write=write)
        else:
            weight_map = {}
            n = len(shards)
            for i, shard in enumerate(shards):
                fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
                write_safetensors(os.path.join(tmp, fname), shard, write=write)
                weight_map.update({t[0]: fname for t in shard})
            if write:
                with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
                    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        if tokenizer_path and write:
            copy_tokenizer_files(tokenizer_path, tmp)
    return os.path.abspath(out_dir)
