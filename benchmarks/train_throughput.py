"""Train-step throughput: s1jax (jitted sharded step: bf16 compute, fp32 master weights, AdamW) vs PyTorch
transformers (bf16 autocast, fp32 weights, AdamW) on the same model shape, batch and device, in one run.

    python benchmarks/train_throughput.py --preset qwen2_5_0_5b --seq-len 4096 --batch 4 --remat full
    python benchmarks/train_throughput.py                       # tiny CPU smoke run

Random weights and tokens; every position is a target. Prints one table: tokens/s, step time, MFU (6N + causal
attention FLOPs per token over the device's peak bf16 FLOP/s; n/a on CPU unless --peak-flops) and the ratio.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", help="model preset (s1jax.model.presets.PRESETS)")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=8, help="global batch (sequences per step)")
    p.add_argument("--accum", type=int, default=1, help="micro-batches per step (s1jax only; torch loops)")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps (compilation)")
    p.add_argument("--remat", default="full", choices=["none", "full", "dots", "dots_no_batch"])
    p.add_argument("--loss-chunk", type=int, default=1024)
    p.add_argument("--param-dtype", default="float32")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--attention-impl", default="", help="'' (XLA), 'cudnn' (flash attention on NVIDIA) or 'chunked'")
    p.add_argument("--fsdp", type=int, default=-1)
    p.add_argument("--tensor", type=int, default=1)
    p.add_argument("--peak-flops", type=float, default=0.0, help="per-device peak FLOP/s for MFU (0: from table)")
    p.add_argument("--no-torch", action="store_true")
    return p.parse_args(argv)


def bench_jax(args, config) -> dict:
    import optax

    from s1jax.model.params import build_decoder, init_params, param_shapes, param_shardings
    from s1jax.sharding import make_mesh
    from s1jax.train.step import batch_shardings, make_train_step, state_shardings

    mesh = make_mesh(1, args.fsdp, args.tensor)
    pdt = jnp.dtype(args.param_dtype)
    params = init_params(config, seed=0, param_dtype=pdt, mesh=mesh)
    tx = optax.adamw(1e-5, b1=0.9, b2=0.95, eps=1e-8, weight_decay=1e-4)
    shard = state_shardings(param_shardings(config, mesh), tx, param_shapes(config, pdt), mesh)
    state = {"params": params, "opt_state": jax.jit(tx.init, out_shardings=shard["opt_state"])(params),
             "step": jax.device_put(jnp.zeros((), jnp.int32), shard["step"])}
    module = build_decoder(config, dtype=args.dtype, param_dtype=pdt, remat_policy=args.remat,
                           attention_impl=args.attention_impl or None)
    b_shard = batch_shardings(mesh)
    step = make_train_step(module, tx, optax.constant_schedule(1e-5), shard, b_shard, loss_chunk=args.loss_chunk,
                           nan_policy="none")
    rng = np.random.default_rng(0)
    micro = args.batch // args.accum
    ids = rng.integers(0, config.vocab_size, (args.accum, micro, args.seq_len)).astype(np.int32)
    host = {"input_ids": ids, "loss_mask": np.ones_like(ids), "attention_mask": np.ones_like(ids),
            "positions": np.broadcast_to(np.arange(args.seq_len, dtype=np.int32), ids.shape).copy()}
    batch = {k: jax.device_put(v, b_shard[k]) for k, v in host.items()}
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        state, m = step(state, batch)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        state, m = step(state, batch)
    jax.block_until_ready(m)
    dt = (time.perf_counter() - t0) / args.steps
    return {"step_s": dt, "loss": float(m["loss"]), "warmup_s": compile_s, "devices": mesh.devices.size}


def bench_torch(args, config) -> dict:
    import torch
    import transformers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf = config.to_hf_dict()
    hf_config = transformers.AutoConfig.for_model(hf.pop("model_type"), **{k: v for k, v in hf.items() if k != "architectures"})
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(hf_config, attn_implementation="sdpa").to(device)
    model.train()
    if args.remat != "none":
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4,
                            fused=device == "cuda")
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq_len), device=device)
    micro = args.batch // args.accum
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32

    def one_step() -> float:
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for a in range(args.accum):
            chunk = ids[a * micro : (a + 1) * micro]
            with torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
                loss = model(input_ids=chunk, labels=chunk).loss / args.accum
            loss.backward()
            total += float(loss.detach())
        opt.step()
        return total

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = one_step()
    sync()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = one_step()
    sync()
    return {"step_s": (time.perf_counter() - t0) / args.steps, "loss": loss, "warmup_s": warm, "devices": 1,
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}


def main(argv=None) -> int:
    args = parse_args(argv)
    from s1jax.model.presets import preset_config
    from s1jax.train.metrics import flops_per_token, peak_flops_per_device

    if args.batch % args.accum:
        raise SystemExit(f"--batch {args.batch} must be divisible by --accum {args.accum}")
    config = preset_config(args.preset)
    tokens = args.batch * args.seq_len
    kind = jax.devices()[0].device_kind
    peak = peak_flops_per_device(kind, args.peak_flops)
    fpt = flops_per_token(config, args.seq_len)
    rows = [("s1jax (JAX)", bench_jax(args, config))]
    if not args.no_torch:
        rows.append(("PyTorch transformers", bench_torch(args, config)))
    print(f"\ntrain step: preset={args.preset} ({config.num_params / 1e6:.1f}M params) seq_len={args.seq_len} "
          f"batch={args.batch} accum={args.accum} remat={args.remat} dtype={args.dtype}/{args.param_dtype} "
          f"device={kind} x{jax.device_count()}")
    print(f"FLOPs/token = {fpt:.3e}; peak = {'%.0f TFLOP/s/device' % (peak / 1e12) if peak else 'unknown (MFU n/a)'}")
    header = f"| {'implementation':<22} | {'tokens/s':>12} | {'step (s)':>9} | {'MFU':>7} | {'warm-up (s)':>11} | {'loss':>8} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, r in rows:
        tps = tokens / r["step_s"]
        mfu = f"{100 * fpt * tps / (peak * r['devices']):.1f}%" if peak else "n/a"
        print(f"| {name:<22} | {tps:>12,.0f} | {r['step_s']:>9.4f} | {mfu:>7} | {r['warmup_s']:>11.1f} | {r['loss']:>8.4f} |")
    if len(rows) == 2:
        ratio = rows[1][1]["step_s"] / rows[0][1]["step_s"]
        print(f"\ns1jax / PyTorch throughput ratio: {ratio:.2f}x" + ("" if math.isfinite(ratio) else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
