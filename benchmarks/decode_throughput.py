"""Decode throughput of the s1jax generation engine vs PyTorch ``transformers`` on the same device, with the memory
roofline and the cost of the budget-forcing state machine.

    python benchmarks/decode_throughput.py                       # qwen2_5_1_5b, bf16, random weights (GPU)
    python benchmarks/decode_throughput.py --cpu-tiny            # tiny model on the CPU, seconds
    python benchmarks/decode_throughput.py --batch-sizes 1,16,64 --new-tokens 512 --hbm-gbps 3350

Columns, per batch size (tokens/s = batch x decode steps / wall time of the decode, prefill excluded):
  s1jax          the budget-forcing engine (``s1jax.inference.engine``), greedy, thinking capped at --new-tokens
  plain          the same decoder and cache in a bare greedy ``while_loop`` (no state machine): BF overhead % is
                 plain vs s1jax
  torch          ``transformers`` ``generate`` (greedy, min=max new tokens) of the same architecture and dtype
  roofline       batch / (bytes read per step / bandwidth): parameters + the KV cache the step reads (the written
                 slots: the engine reads each step only up to the longest live row, prompt + new/2 on average)
No ml_collections / datasets imports: it runs on a bare accelerator box with jax, flax and (optionally) torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from s1jax.inference import budget as bf  # noqa: E402
from s1jax.inference.engine import Engine, round_up  # noqa: E402
from s1jax.inference.scheduler import empty_rows  # noqa: E402
from s1jax.inference.sampling import Sampling, row_keys  # noqa: E402
from s1jax.model.config import ModelConfig  # noqa: E402
from s1jax.model.params import build_decoder  # noqa: E402
from s1jax.model.kv_cache import init_cache  # noqa: E402
from s1jax.model.api import load_model, positions_from_mask  # noqa: E402


def preset(name: str) -> ModelConfig:
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "s1jax", "model", "presets.py")
    # presets.py imports ml_collections at module level; read just its PRESETS literal.
    import ast

    tree = ast.parse(open(src).read())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "PRESETS":
            for k, v in zip(node.value.keys, node.value.values):
                if ast.literal_eval(k) == name:
                    return ModelConfig(**{kw.arg: ast.literal_eval(kw.value) for kw in v.keywords})
    raise SystemExit(f"unknown preset {name!r}")


def measure_bandwidth_gbps() -> float:
    """Device memory bandwidth from a large read+write (x * 2)."""
    n = (1 << 28) if jax.default_backend() != "cpu" else (1 << 25)  # 1 GiB / 128 MiB of fp32
    x = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda a: a * 2.0)
    f(x).block_until_ready()
    t = time.perf_counter()
    for _ in range(5):
        y = f(x)
    y.block_until_ready()
    return 5 * 2 * 4 * n / (time.perf_counter() - t) / 1e9


def spec_for(config: ModelConfig, forcing: bool) -> bf.ForcingSpec:
    """Synthetic token ids (random weights, no tokenizer). ``forcing=False``: the stop id is outside the vocab."""
    v = config.vocab_size - 1  # ids >= v are masked, so a stop there can never be sampled
    stop = 1 if forcing else v
    return bf.ForcingSpec(ignore=(2, 3), end=(4, 5), end_max=(4, 5, 6, 7), newline=(8,), think_stops=((stop,),),
                          answer_stops=((v,),), vocab_size=v)


def engine_run(model, engine: Engine, prompts, mask, new_tokens: int, num_ignore: int) -> tuple[float, int]:
    """Every row refilled at once, then one decode call to the end; returns (decode wall time, decode steps)."""
    b, p = prompts.shape
    spec = engine.spec
    s = round_up(p + new_tokens + 16, 128)
    nl = jnp.zeros((model.config.vocab_size,), bool)
    full = lambda v: np.full((b,), v)  # noqa: E731
    lengths = mask.sum(axis=1).astype(np.int32)
    rows = bf.initial_rows(prompts, lengths, spec, row_keys(0, np.arange(b)), np.ones(b, bool),
                           dict(max_think=full(new_tokens), min_think=full(0), num_ignore=full(num_ignore),
                                max_answer=full(0)))
    state = engine.init_state(empty_rows(spec, b), None, slots=b, max_len=s)
    state = engine.refill(model.params, state, np.arange(b, dtype=np.int32), prompts, lengths, rows, nl)
    jax.block_until_ready(state)
    t = time.perf_counter()
    state = engine.decode(model.params, state, nl, np.int32(s + 1), np.bool_(False), np.int32(0))
    jax.block_until_ready(state)
    return time.perf_counter() - t, int(state.steps)


def make_plain(model):
    module = build_decoder(model.config, dtype=model.dtype, param_dtype=model.param_dtype)
    vocab = model.config.vocab_size

    @jax.jit
    def prefill(params, prompts, mask, cache):
        logits, cache = module.apply({"params": params}, prompts, positions_from_mask(mask), attention_mask=mask,
                                     cache=cache)
        return jnp.argmax(logits[:, -1, : vocab - 1], -1).astype(jnp.int32), mask.sum(1).astype(jnp.int32), cache

    @jax.jit
    def decode(params, tok, pos, cache, steps):
        def body(c):
            tok, pos, cache, i = c
            logits, cache = module.apply({"params": params}, tok[:, None], pos[:, None], cache=cache)
            return jnp.argmax(logits[:, 0, : vocab - 1], -1).astype(jnp.int32), pos + 1, cache, i + 1

        return jax.lax.while_loop(lambda c: c[3] < steps, body, (tok, pos, cache, jnp.int32(0)))

    def run(prompts, mask, steps):
        b, p = prompts.shape
        cache = init_cache(model.config, b, round_up(p + steps + 16, 128), jnp.dtype(model.dtype))
        tok, pos, cache = prefill(model.params, prompts, mask, cache)
        jax.block_until_ready(cache)
        t = time.perf_counter()
        out = decode(model.params, tok, pos, cache, np.int32(steps))
        jax.block_until_ready(out)
        return time.perf_counter() - t

    return run


def torch_run(config: ModelConfig, dtype: str, prompts: np.ndarray, new_tokens: int, repeats: int) -> float | None:
    try:
        import torch
        import transformers
    except ImportError:
        return None
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    hf = config.to_hf_dict()
    cls = transformers.Qwen2Config if config.architecture == "qwen2" else transformers.LlamaConfig
    tdtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(cls(**hf), dtype=tdtype).eval()
    ids = torch.as_tensor(prompts, device=device)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    best = float("inf")
    with torch.inference_mode():
        model.generate(ids, **kw)  # warm-up
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            model.generate(ids, **kw)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="qwen2_5_1_5b")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--cpu-tiny", action="store_true", help="tiny model, small sizes (CPU smoke run)")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--hbm-gbps", type=float, default=0.0, help="memory bandwidth; 0 = measure")
    ap.add_argument("--num-ignore", type=int, default=2, help="ignored stops in the forcing-on run")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    if args.cpu_tiny:
        args.preset, args.dtype = "tiny", "float32"
        args.batch_sizes, args.prompt_len, args.new_tokens = "1,4,16", 32, 64

    config = preset(args.preset)
    model = load_model(config, dtype=args.dtype)
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    gbps = args.hbm_gbps or measure_bandwidth_gbps()
    param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(model.params))
    kv_per_slot = 2 * config.num_layers * config.num_kv_heads * config.head_dim * jnp.dtype(args.dtype).itemsize
    sampling = Sampling()
    eng_off = Engine(config, args.dtype, None, spec_for(config, False), sampling)
    eng_on = Engine(config, args.dtype, None, spec_for(config, True), sampling)
    plain = make_plain(model)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), preset {args.preset} {args.dtype}, "
          f"{param_bytes / 1e9:.3f} GB params, prompt {args.prompt_len}, {args.new_tokens} new tokens, "
          f"bandwidth {gbps:.0f} GB/s ({'given' if args.hbm_gbps else 'measured'})")
    header = (f"{'batch':>5} | {'s1jax tok/s':>11} | {'plain tok/s':>11} | {'BF-on tok/s':>11} | {'BF ovh %':>8} | "
              f"{'torch tok/s':>11} | {'s1jax/torch':>11} | {'roofline':>9} | {'% roof':>6}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for b in sizes:
        prompts = rng.integers(10, config.vocab_size - 1, size=(b, args.prompt_len)).astype(np.int32)
        mask = np.ones_like(prompts)
        best = {}
        for name, fn in (
            ("s1jax", lambda: engine_run(model, eng_off, prompts, mask, args.new_tokens, 0)),
            ("on", lambda: engine_run(model, eng_on, prompts, mask, args.new_tokens, args.num_ignore)),
            ("plain", lambda: (plain(prompts, mask, args.new_tokens), args.new_tokens)),
        ):
            fn()  # compile
            runs = [fn() for _ in range(args.repeats)]
            best[name] = max(b * steps / t for t, steps in runs)
        t_torch = None if args.no_torch else torch_run(config, args.dtype, prompts, args.new_tokens, args.repeats)
        torch_tps = b * args.new_tokens / t_torch if t_torch else float("nan")
        slots_read = args.prompt_len + args.new_tokens / 2  # mean written length over the decode
        step_bytes = param_bytes + b * slots_read * kv_per_slot
        roof = b / (step_bytes / (gbps * 1e9))
        overhead = 100.0 * (best["plain"] / best["on"] - 1.0)
        print(f"{b:>5} | {best['s1jax']:>11.1f} | {best['plain']:>11.1f} | {best['on']:>11.1f} | {overhead:>8.1f} | "
              f"{torch_tps:>11.1f} | {best['s1jax'] / torch_tps:>11.2f} | {roof:>9.0f} | "
              f"{100 * best['s1jax'] / roof:>6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
