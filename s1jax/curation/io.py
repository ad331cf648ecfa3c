"""Curation I/O: load a question pool, write the selected set in the s1K schema, the stage report and the plot.

The selected set is written as parquet and JSONL with exactly the s1K columns (question, solution, cot_type,
source_type, metadata, thinking_trajectories: list[str], attempt) plus ``domain`` and ``trace_tokens``, so the SFT
loader reads it like the hub's s1K. :func:`curate_from_config` is the config-driven run the CLI calls.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from s1jax.curation.decontam import load_eval_questions
from s1jax.curation.pipeline import OUTPUT_COLUMNS, CurationResult, run_curation
from s1jax.curation.solvers import benchmark_questions
from s1jax.curation.synthetic_pool import make_synthetic_pool
from s1jax.curation.text import as_trajectories
from s1jax.data.files import read_row_source

__all__ = ["load_pool", "write_outputs", "format_report", "plot_domains", "curate_from_config"]


def _read_local(path: str) -> list[dict[str, Any]]:
    return read_row_source(path)


def load_pool(source: str, split: str = "train", limit: int = 0) -> list[dict[str, Any]]:
    """Rows of a pool: a local file/directory if ``source`` exists on disk, else a hub dataset via ``datasets``.

    The hub path is the real recipe (``simplescaling/data_ablation_full59K``); offline it fails with the
    ``datasets`` error, re-raised as ValueError naming the source.
    """
    if os.path.exists(source):
        rows = _read_local(source)
    else:
        try:
            import datasets

            ds = datasets.load_dataset(source, split=split)
        except Exception as e:  # noqa: BLE001 - every hub/offline failure means the same thing to the user
            raise ValueError(f"cannot load pool {source!r} (split {split!r}) as a local path or hub dataset: {e}") from e
        if limit:
            ds = ds.select(range(min(limit, len(ds))))
        rows = ds.to_list()
    return rows[:limit] if limit else rows


def _output_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {c: row.get(c) for c in OUTPUT_COLUMNS}
    out["thinking_trajectories"] = as_trajectories(out["thinking_trajectories"])
    meta = out["metadata"]
    if meta is not None and not isinstance(meta, str):
        out["metadata"] = json.dumps(meta, default=str)  # s1K stores metadata as a string
    for c in ("question", "solution", "cot_type", "source_type", "attempt", "domain"):
        if out[c] is not None and not isinstance(out[c], str):
            out[c] = str(out[c])
    out["trace_tokens"] = int(out["trace_tokens"] or 0)
    return out


def format_report(result: CurationResult) -> str:
    """The stage table (rows after each stage, change) and the per-rule drop table, as printable text."""
    lines = [f"{'stage':<22}{'rows':>9}{'change':>9}", "-" * 40]
    prev = None
    for stage, n in result.stages:
        change = "" if prev is None else f"{n - prev:+d}"
        lines.append(f"{stage:<22}{n:>9}{change:>9}")
        prev = n
    lines += ["", f"{'dropped by':<40}{'rows':>6}", "-" * 46]
    for stage, rules in result.drop_table().items():
        for rule, n in sorted(rules.items(), key=lambda kv: -kv[1]):
            lines.append(f"{stage + ':' + rule:<40}{n:>6}")
    return "\n".join(lines)


def plot_domains(before: Mapping[str, int], after: Mapping[str, int], path: str) -> None:
    """Horizontal bar charts of domain counts before (the candidate pool) and after selection, same domain order.

    Two panels rather than one axis because the counts differ by orders of magnitude (24K vs 1K in s1).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = sorted(set(before) | set(after), key=lambda d: (-before.get(d, 0), d))
    height = max(3.0, 0.28 * len(domains) + 1.2)
    fig, axes = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    ys = list(range(len(domains)))
    for ax, counts, title, color in (
        (axes[0], before, "before selection (after difficulty)", "#8c9fb5"),
        (axes[1], after, "after selection", "#d9822b"),
    ):
        ax.barh(ys, [counts.get(d, 0) for d in domains], color=color)
        ax.set_title(f"{title}: {sum(counts.values())} questions")
        ax.set_xlabel("questions")
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels([d if len(d) <= 40 else d[:37] + "..." for d in domains], fontsize=8)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(
    result: CurationResult, out_dir: str, name: str = "s1k_curated", *, parquet: bool = True, jsonl: bool = True, plot: bool = True
) -> dict[str, str]:
    """Write the selection (parquet/JSONL), ``stage_report.json``, ``drops.jsonl`` and ``domains.png``; returns paths."""
    os.makedirs(out_dir, exist_ok=True)
    rows = [_output_row(r) for r in result.selected]
    paths: dict[str, str] = {}
    if parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [(c, pa.string()) for c in ("question", "solution", "cot_type", "source_type", "metadata")]
            + [("thinking_trajectories", pa.list_(pa.string())), ("attempt", pa.string()), ("domain", pa.string()),
               ("trace_tokens", pa.int64())]
        )
        paths["parquet"] = os.path.join(out_dir, f"{name}.parquet")
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), paths["parquet"])
    if jsonl:
        paths["jsonl"] = os.path.join(out_dir, f"{name}.jsonl")
        with open(paths["jsonl"], "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    paths["report"] = os.path.join(out_dir, "stage_report.json")
    with open(paths["report"], "w", encoding="utf-8") as f:
        json.dump(result.report(), f, indent=2)
    paths["drops"] = os.path.join(out_dir, "drops.jsonl")
    with open(paths["drops"], "w", encoding="utf-8") as f:
        for d in result.drops:
            f.write(json.dumps({"row_id": d.row_id, "stage": d.stage, "rule": d.rule, "detail": d.detail}) + "\n")
    if plot:
        paths["plot"] = os.path.join(out_dir, "domains.png")
        plot_domains(result.domains_before, result.domains_after, paths["plot"])
    return paths


def curate_from_config(cfg: Any, **inject: Any) -> tuple[CurationResult, dict[str, str]]:
    """Load the configured pool, run the pipeline (``inject`` goes to :func:`run_curation`) and write outputs.

    ``pool.source == "synthetic"`` builds :func:`s1jax.curation.synthetic_pool.make_synthetic_pool`, planting rows copied
    from ``pool.synthetic_contaminate`` eval questions so the offline run exercises decontamination too.
    """
    pool = cfg.pool
    if pool.source == "synthetic":
        contaminate: Sequence[str] = ()
        if cfg.decontam.enabled and pool.synthetic_contaminate > 0 and "eval_questions" not in inject:
            d = cfg.decontam
            _, questions = load_eval_questions(d.eval_sets, d.data_dir, d.skip_missing, d.use_benchmarks, benchmark_questions)
            step = max(1, len(questions) // pool.synthetic_contaminate)
            contaminate = questions[::step][: pool.synthetic_contaminate]
        rows = make_synthetic_pool(pool.synthetic_rows, pool.synthetic_seed, eval_questions=contaminate).rows
        rows = rows[: pool.limit] if pool.limit else rows
    else:
        rows = load_pool(pool.source, pool.split, pool.limit)
    result = run_curation(rows, cfg, **inject)
    out = cfg.output
    paths = write_outputs(result, out.dir, out.name, parquet=out.parquet, jsonl=out.jsonl, plot=out.plot)
    return result, paths
