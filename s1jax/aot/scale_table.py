"""``python -m s1jax.aot.scale_table [--only SUBSTRING]``: compile every shipped config for its target, write
docs/scale.md (``make aot`` runs it).

Results are kept per entry in docs/scale.json, so ``--only`` refreshes some rows and the page is rendered from all
of them; each row carries the exact command that reproduces it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from importlib import metadata

from s1jax.aot.host_env import compile_host_env
from s1jax.config import apply_overrides, load_config_file

__all__ = ["ENTRIES", "main"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (label, --config spec, overrides): every config the README shows, on its intended target.
ENTRIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("s1-32B", "configs/train/s1_32b.py:v5p-128", ()),
    ("s1-32B", "configs/train/s1_32b.py:h100x16", ()),
    ("s1.1-32B", "configs/train/s1_1_32b.py:v5p-128", ()),
    ("s1.1-32B", "configs/train/s1_1_32b.py:h100x16", ()),
    ("Qwen2.5-7B", "configs/train/qwen2_5_7b.py:h100x8", ()),
    ("Qwen2.5-0.5B", "configs/train/qwen2_5_0_5b.py", ()),
    ("eval 32B, 32768 ctx", "configs/aot/eval_32b.py:v5p-8", ()),
    ("eval 32B, 32768 ctx", "configs/aot/eval_32b.py:v6e-8", ()),
    ("eval 32B, 32768 ctx", "configs/aot/eval_32b.py:h100x8", ()),
)


def _command(spec: str, overrides: tuple[str, ...]) -> str:
    return " ".join(["s1jax compile", f"--config={spec}", *overrides])


def _run_entry(label: str, spec: str, overrides: tuple[str, ...]) -> dict:
    # s1jax.aot.compile / .report import JAX: only after main() ran compile_host_env() (see s1jax.aot.host_env)
    from s1jax.aot.compile import compile_for_target
    from s1jax.aot.report import does_not_fit_message, format_report, markdown_rows

    cfg = load_config_file(os.path.join(REPO_ROOT, spec))  # "path.py:arg" (the repo path has no colon)
    apply_overrides(cfg, dict(o[len("--config."):].split("=", 1) for o in overrides))
    t0 = time.perf_counter()
    report = compile_for_target(cfg, spec, log=lambda s: print(s, flush=True))
    text = format_report(report)
    print(text, flush=True)
    if not report.fits:
        print(does_not_fit_message(report), flush=True)
    return {"label": label, "spec": spec, "command": _command(spec, overrides), "fits": report.fits,
            "rows": markdown_rows(report, f"{label} `{spec.split('/')[-1]}`"), "text": text,
            "wall_s": time.perf_counter() - t0}


def _render(results: dict[str, dict], meta: dict) -> str:
    from s1jax.aot.report import MARKDOWN_HEADER  # imports JAX: after compile_host_env(), as in _run_entry

    lines = [
        "# Scale: does each shipped config fit its target?",
        "",
        "Every row is an ahead-of-time compile of the project's real program (the train step with the config's",
        "optimizer, remat, attention, loss chunking and shardings; or the engine's prefill and budget-forcing decode",
        "loop) by the target's own compiler (libtpu / the JAX CUDA plugin), on a CPU-only host, with",
        "`compiled.memory_analysis()` giving the bytes one device needs. Regenerate with `make aot`",
        f"(`python -m s1jax.aot.scale_table`); one row: the command in its section below.",
        "",
        f"Generated {meta['date']} with jax {meta['jax']}, libtpu {meta['libtpu']}, jax-cuda12-plugin "
        f"{meta['cuda_plugin']}, on {meta['host']}.",
        "",
        "Predicted times: training at the stated MFU (analytic model FLOPs, `6 N + attention` per token, every step",
        "padded to the full block, so an upper bound; the s1 paper's s1-32B run took 26 min on 16 H100); decode as",
        "HBM-bound (weights + KV cache read once per step), a lower bound. `compiled.cost_analysis()` FLOPs are not",
        "used: they count a `scan` body once. GPU usable memory is 95 % of HBM (`XLA_PYTHON_CLIENT_MEM_FRACTION` in",
        "launch/); TPU programs are checked by the compiler against the whole HBM. Compile times are wall-clock on",
        "the host named above and grow with its load (this page was measured on 2 cores shared with other jobs, load",
        "average about 10; the 32B v5p-128 train step took 166 s of CPU time, 7.5 min wall, 2.0 GB of RAM).",
        "",
        MARKDOWN_HEADER,
    ]
    for label, spec, overrides in ENTRIES:
        if spec in results:
            lines += results[spec]["rows"]
        else:
            target = spec.split(":")[-1] if ":" in spec else "its target"
            lines.append(f"| {label} `{spec.split('/')[-1]}` | {target} | | not compiled yet: "
                         f"`{_command(spec, overrides)}` | | | | | | | |")
    searched = [(label, spec, line.strip()) for label, spec, _ in ENTRIES if spec in results
                for line in results[spec]["text"].splitlines() if line.startswith("largest batch that fits")]
    if searched:
        lines += ["", "Largest power-of-two eval batch that fits (the engine buckets batches to powers of two; the next",
                  "power of two was compiled and does not fit):", ""]
        lines += [f"- {label}, `{spec}`: {line}" for label, spec, line in searched]
    lines += ["", "## Per config: command and full output", ""]
    for label, spec, _ in ENTRIES:
        if spec not in results:
            continue
        r = results[spec]
        lines += [f"### {label}: `{spec}`", "", "```", f"$ {r['command']}", r["text"], "```", ""]
    return "\n".join(lines) + "\n"


def _versions() -> dict:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"jax": version("jax"), "libtpu": version("libtpu"), "cuda_plugin": version("jax-cuda12-plugin"),
            "host": f"{platform.machine()} {os.cpu_count()} CPUs (no accelerator)",
            "date": datetime.date.today().isoformat()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="compile only entries whose config spec contains this "
                        "(one that matches none, e.g. '#', only re-renders the page)")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "docs", "scale.md"))
    args = parser.parse_args(argv)
    compile_host_env()  # before anything imports JAX
    store = os.path.splitext(args.out)[0] + ".json"
    results: dict[str, dict] = {}
    if os.path.isfile(store):
        with open(store, encoding="utf-8") as f:
            results = json.load(f)
    status = 0
    for label, spec, overrides in ENTRIES:
        if args.only and args.only not in spec:
            continue
        print(f"== {label}: {_command(spec, overrides)}", flush=True)
        results[spec] = entry = _run_entry(label, spec, overrides)
        status |= 0 if entry["fits"] else 1
        if os.path.isfile(store):  # merge with what other runs stored meanwhile
            with open(store, encoding="utf-8") as f:
                results = {**json.load(f), spec: entry}
        with open(store, "w", encoding="utf-8") as f:  # after every entry: a long run keeps what it measured
            json.dump(results, f, indent=1)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(_render(results, _versions()))
    print(f"wrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
