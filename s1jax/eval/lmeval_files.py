"""lm-evaluation-harness files beside our JSONL, so lm-eval tooling (and people used to s1's PyTorch/vLLM runs) can
read an s1jax eval: ``results_<date>.json`` and one ``samples_<task>_<date>.jsonl`` per task.

The layout is lm-eval's (``lm_eval/evaluator.py``: the per-sample dict built when ``log_samples`` is on;
``lm_eval/loggers/evaluation_tracker.py``: ``save_results_aggregated`` / ``save_results_samples``, which name the
files ``results_{date_id}.json`` and ``samples_{task}_{date_id}.jsonl`` with ``date_id =
datetime.now().isoformat().replace(":", "-")`` and flatten each sample's ``arguments`` to
``{"gen_args_0": {"arg_0": prompt, "arg_1": gen_kwargs}}``):

* results: ``results[task]["exact_match,none"]`` (a fraction, as lm-eval's ``mean``) and
  ``"exact_match_stderr,none"`` (lm-eval's ``mean_stderr``), ``configs``, ``versions``, ``n-shot``,
  ``higher_is_better``, ``n-samples``, ``config``, ``task_hashes`` and the tracker's model/system fields.
* samples: ``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps``, ``filter``, ``metrics``,
  ``doc_hash``, ``prompt_hash``, ``target_hash`` and the metric values (``exact_match``, and s1's fork's
  ``extracted_answers``, ``tok_think@1``, ``tok_ans@1``).

One lm-eval *task* per (method, point): s1 ran lm-eval once per thinking budget with the same task name; here a
budget sweep is one run, so the point is part of the task name: ``aime24_nofigures_budget_forcing_max512``. Each
task's config says its budget (``generation_kwargs.max_tokens_thinking``, s1's fork's name). Majority voting is
left out (its samples are votes, not lm-eval docs). A response is rendered as ``thinking + ANSWER_SEP + answer``
(s1's ``<|im_start|>answer`` marker); the two parts are also kept under ``s1jax``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from s1jax.eval.benchmarks import BENCHMARKS, LMEVAL_TASKS, EvalItem, canonical_name
from s1jax.eval.report import MAJORITY
from s1jax.eval.stats import mean_stderr

__all__ = ["ANSWER_SEP", "task_name", "write_lmeval_files", "date_id", "sample_rows", "results_dict"]

ANSWER_SEP = "<|im_start|>answer\n"
_FILE_PATTERNS = (re.compile(r"results_.+\.json"), re.compile(r"samples_.+\.jsonl"))


def hash_string(text: str) -> str:
    """lm-eval's ``hash_string``: sha256 hex of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def date_id(now: datetime.datetime | None = None) -> str:
    """lm-eval's file date: ISO time with ':' replaced by '-'."""
    return (now or datetime.datetime.now()).isoformat().replace(":", "-")


def task_name(benchmark: str, method: str, point: str) -> str:
    """``aime24_nofigures_budget_forcing_max512``: the lm-eval task name of one (method, point)."""
    base = LMEVAL_TASKS.get(canonical_name(benchmark), re.sub(r"[^A-Za-z0-9]+", "_", benchmark))
    slug = re.sub(r"[^A-Za-z0-9]+", "", point)
    return f"{base}_{re.sub(r'[^A-Za-z0-9]+', '_', method)}_{slug}"


def _doc(item: EvalItem) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": item.id, "problem": item.problem, "answer": item.answer}
    if item.choices:
        doc["choices"] = list(item.choices)
    return doc


def _gen_kwargs(settings: Mapping[str, Any], budget: Any) -> dict[str, Any]:
    temperature = float(settings.get("temperature", 0.0) or 0.0)
    max_answer = int(settings.get("max_answer_tokens", 0) or 0)
    out: dict[str, Any] = {"until": [], "do_sample": temperature > 0, "temperature": temperature,
                           "top_p": settings.get("top_p"), "top_k": settings.get("top_k")}
    if budget is not None:
        out["max_tokens_thinking"] = int(budget)
        out["max_gen_toks"] = int(budget) + max_answer
    return out


def sample_rows(records: Sequence[dict[str, Any]], items: Sequence[EvalItem], settings: Mapping[str, Any],
                ) -> list[dict[str, Any]]:
    """lm-eval sample dicts of one task's records, in benchmark order (``doc_id`` = index in the benchmark)."""
    index = {it.id: i for i, it in enumerate(items)}
    rows = []
    for r in sorted(records, key=lambda r: (index.get(r["item_id"], len(index)), r.get("sample", 0))):
        item = items[index[r["item_id"]]] if r["item_id"] in index else None
        doc = _doc(item) if item else {"id": r["item_id"], "problem": r.get("prompt", ""), "answer": r["reference"]}
        prompt = r.get("prompt", "")
        gen = _gen_kwargs(settings, r.get("budget"))
        text = (r.get("thinking") or "") + ANSWER_SEP + (r.get("answer") or "")
        target = str(r["reference"])
        rows.append({
            "doc_id": index.get(r["item_id"], -1),
            "doc": doc,
            "target": target,
            "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": gen}},
            "resps": [[text]],
            "filtered_resps": [text],
            "filter": "none",
            "metrics": ["exact_match", "extracted_answers", "tok_think@1", "tok_ans@1"],
            "doc_hash": hash_string(json.dumps(doc, indent=2, ensure_ascii=False)),
            "prompt_hash": hash_string(prompt),
            "target_hash": hash_string(target),
            "exact_match": int(bool(r["correct"])),
            "extracted_answers": [r.get("extracted") or ""],
            "tok_think@1": int(r.get("thinking_tokens", 0)),
            "tok_ans@1": int(r.get("answer_tokens", 0)),
            "s1jax": {k: r.get(k) for k in ("method", "point", "budget", "item_id", "sample", "thinking", "answer",
                                            "num_ignored", "hit_max_budget", "tries", "grade_reason",
                                            "fingerprint")},
        })
    return rows


def _na(x: float | None) -> Any:
    return "N/A" if x is None else x


def results_dict(tasks: Mapping[str, tuple[str, str, list[dict[str, Any]]]], *, benchmark: str, num_items: int,
                 settings: Mapping[str, Any], model_name: str, model_args: str, system: str | None,
                 versions: Mapping[str, Any], fingerprint: str, limit: int | None, seed: int,
                 bootstrap_samples: int) -> dict[str, Any]:
    """The aggregated results in lm-eval's layout; ``tasks`` maps task name -> (method, point, sample rows)."""
    key = canonical_name(benchmark)
    repo, hub_config, split, _ = BENCHMARKS.get(key, (benchmark, None, "test", ""))
    base = LMEVAL_TASKS.get(key, benchmark)
    results: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    for name, (method, point, rows) in tasks.items():
        em = [float(r["exact_match"]) for r in rows]
        think = [float(r["tok_think@1"]) for r in rows]
        budget = rows[0]["s1jax"]["budget"] if rows else None
        results[name] = {
            "alias": name,
            "exact_match,none": sum(em) / len(em) if em else 0.0,
            "exact_match_stderr,none": _na(mean_stderr(em)),
            "tok_think@1,none": sum(think) / len(think) if think else 0.0,
            "tok_think@1_stderr,none": _na(mean_stderr(think)),
        }
        configs[name] = {
            "task": name, "tag": [base], "dataset_path": repo, "dataset_name": hub_config, "test_split": split,
            "output_type": "generate_until", "doc_to_target": "answer", "num_fewshot": 0,
            "generation_kwargs": _gen_kwargs(settings, budget),
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True},
                            {"metric": "tok_think@1", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0, "s1jax_method": method, "s1jax_point": point, "budget": budget},
        }
    task_hashes = {name: hash_string("".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in rows))
                   for name, (_, _, rows) in tasks.items()}
    git = versions.get("git_commit")
    return {
        "results": results,
        "group_subtasks": {base: list(tasks)},
        "configs": configs,
        "versions": {name: 1.0 for name in tasks},
        "n-shot": {name: 0 for name in tasks},
        "higher_is_better": {name: {"exact_match": True, "tok_think@1": True} for name in tasks},
        "n-samples": {name: {"original": num_items, "effective": len(rows)} for name, (_, _, rows) in tasks.items()},
        "config": {"model": "s1jax", "model_args": model_args, "batch_size": settings.get("batch_size"),
                   "batch_sizes": [], "device": None, "use_cache": None, "limit": limit or None,
                   "bootstrap_iters": bootstrap_samples, "gen_kwargs": _gen_kwargs(settings, None),
                   "random_seed": seed, "numpy_seed": seed, "torch_seed": None, "fewshot_seed": None},
        "git_hash": git[:7] if git else None,
        "date": datetime.datetime.now().timestamp(),
        "pretty_env_info": "; ".join(f"{k} {v}" for k, v in versions.items() if v and k != "git_commit"),
        "transformers_version": None,
        "task_hashes": task_hashes,
        "model_source": "s1jax",
        "model_name": model_name,
        "model_name_sanitized": re.sub(r"[\"<>:/|\\?*\[\]]+", "__", model_name),
        "system_instruction": system or None,
        "system_instruction_sha": hash_string(system) if system else None,
        "fewshot_as_multiturn": False,
        "chat_template": None,
        "chat_template_sha": None,
        "start_time": None,
        "end_time": None,
        "total_evaluation_time_seconds": None,
        "s1jax": {"fingerprint": fingerprint, "versions": dict(versions)},
    }


def write_lmeval_files(records: Sequence[dict[str, Any]], items: Sequence[EvalItem], out_dir: str, *,
                       benchmark: str, settings: Mapping[str, Any], model_name: str, model_args: str = "",
                       system: str | None = None, versions: Mapping[str, Any] | None = None, fingerprint: str = "",
                       limit: int | None = None, seed: int = 0, bootstrap_samples: int = 0,
                       when: datetime.datetime | None = None) -> dict[str, str]:
    """Write ``results_<date>.json`` and ``samples_<task>_<date>.jsonl`` for ``records`` (the report's selection)
    into ``out_dir``, replacing the lm-eval files of an earlier report there. Returns {"results": path,
    task: samples path, ...}. ``settings`` holds the sampling/budget fields (temperature, top_p, top_k,
    max_answer_tokens, batch_size)."""
    groups: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()
    for r in records:
        if r["method"] != MAJORITY:
            groups.setdefault((r["method"], r["point"]), []).append(r)
    tasks = OrderedDict((task_name(benchmark, m, p), (m, p, sample_rows(recs, items, settings)))
                        for (m, p), recs in groups.items())
    for name in os.listdir(out_dir):
        if any(p.fullmatch(name) for p in _FILE_PATTERNS):
            os.remove(os.path.join(out_dir, name))
    stamp = date_id(when)
    paths: dict[str, str] = {}
    for name, (_, _, rows) in tasks.items():
        path = os.path.join(out_dir, f"samples_{name}_{stamp}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[name] = path
    res = results_dict(tasks, benchmark=benchmark, num_items=len(items), settings=settings, model_name=model_name,
                       model_args=model_args, system=system, versions=versions or {}, fingerprint=fingerprint,
                       limit=limit, seed=seed, bootstrap_samples=bootstrap_samples)
    paths["results"] = os.path.join(out_dir, f"results_{stamp}.json")
    with open(paths["results"], "w", encoding="utf-8") as f:
        json.dump(res, f, indent=2, ensure_ascii=False)
    return paths
