"""s1K curation (s1 paper, Section 2): decontamination -> quality -> difficulty -> diversity (Algorithm 1).

The paper turns a 59,029-question pool into s1K: 54,116 after dropping API errors, 51,581 after dropping bad
formatting, 24,496 after dropping questions Qwen2.5-7B/32B-Instruct solve, and 1,000 after domain-uniform,
long-trace-favouring sampling. :func:`run_curation` is that pipeline over a list of row dicts; every model-shaped
dependency (reference solvers, grader, token counter, domain classifier) can be injected, and otherwise is built from
the config through the adapters in :mod:`s1jax.curation.solvers` (s1jax.generate / s1jax.eval.grading) and
:func:`~s1jax.curation.difficulty.make_token_counter` (s1jax.load_tokenizer).

Stage modules: decontam (8-gram overlap), quality (named rules + dedup), difficulty, diversity (MSC domains,
Algorithm 1), io (pool loading, outputs, report, plot); types holds what they share.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from s1jax.curation.decontam import build_ngram_index, decontaminate, load_eval_questions
from s1jax.curation.difficulty import (
    CountTokens,
    GradeFn,
    ReferenceModel,
    Solver,
    apply_difficulty,
    make_token_counter,
)
from s1jax.curation.diversity import (
    DomainClassifier,
    KeywordDomainClassifier,
    LMDomainClassifier,
    is_preselected,
    select_diverse,
)
from s1jax.curation.quality import QUALITY_GROUPS, apply_quality, default_quality_config
from s1jax.curation.solvers import benchmark_questions, make_default_grade_fn, make_model_solver
from s1jax.curation.text import as_trajectories
from s1jax.curation.types import Drop

__all__ = [
    "REQUIRED_COLUMNS",
    "OUTPUT_COLUMNS",
    "default_config",
    "validate_pool",
    "CurationResult",
    "run_curation",
    "build_domain_classifier",
    "build_reference_models",
]

# The s1K schema (what the SFT loader reads); the pool must have all of it.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "question", "solution", "cot_type", "source_type", "metadata", "thinking_trajectories", "attempt",
)
OUTPUT_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + ("domain", "trace_tokens")


def default_config() -> ml_collections.ConfigDict:
    """Every field the pipeline reads, with the s1 recipe's defaults; configs/curate/*.py start from this."""
    return ml_collections.ConfigDict(
        {
            "pool": {
                "source": "simplescaling/data_ablation_full59K",  # hub name, local .parquet/.jsonl/.json, or "synthetic"
                "split": "train",
                "limit": 0,  # 0 = all rows; >0 = the first `limit` rows (smoke runs)
                "synthetic_rows": 600,
                "synthetic_seed": 0,
                "synthetic_contaminate": 3,  # synthetic pool: rows copied from this many eval questions
            },
            "decontam": {
                "enabled": True,
                "ngram": 8,
                "min_words": 4,  # eval questions shorter than this many words are not indexed (too generic)
                "fields": ["question"],
                "eval_sets": ["aime24", "math500", "gpqa_diamond"],
                "data_dir": "",
                "skip_missing": False,
                "use_benchmarks": True,  # fall back to s1jax.eval.benchmarks (hub) for sets not in data_dir
            },
            "quality": default_quality_config(),
            "tokens": {"tokenizer_path": ""},  # "" -> whitespace words (see difficulty.whitespace_token_count)
            "difficulty": {
                "enabled": True,
                "short_circuit": True,
                "reference_field": "solution",
                "grade_kind": "math",
                "models": [
                    {"name": "qwen2.5-7b-instruct", "column": "isqwen7bcorrect", "model_path": "", "tokenizer_path": ""},
                    {"name": "qwen2.5-32b-instruct", "column": "isqwen32bcorrect", "model_path": "", "tokenizer_path": ""},
                ],
                "budget": {"max_thinking_tokens": 4096, "max_answer_tokens": 1024, "temperature": 0.0, "batch_size": 8},
            },
            "diversity": {
                "enabled": True,
                "num_select": 1000,
                "seed": 0,
                "domain_column": "domain",
                "classifier": "keywords",  # "keywords" (offline, deterministic) | "lm"
                "domain_label": "name",  # "name" | "code" | "code_name"
                "lm": {
                    "model_path": "",
                    "tokenizer_path": "",
                    "budget": {"max_thinking_tokens": 256, "max_answer_tokens": 8, "temperature": 0.0, "batch_size": 16},
                },
                "preselect": {
                    "rules": [
                        {"source_contains": ["aime", "gpqa"], "min_trace_tokens": 0},
                        {"source_contains": ["openaimath"], "min_trace_tokens": 5601},  # paper: MATH, > 5,600 tokens
                    ],
                    "require_correct_column": "",  # e.g. a teacher-grade column; "" = no correctness requirement
                    "on_overflow": "error",  # more pre-selected than num_select: "error" | "truncate" (keep longest)
                },
            },
            "output": {"dir": "runs/curate", "name": "s1k_curated", "parquet": True, "jsonl": True, "plot": True},
        }
    )


def validate_pool(rows: Sequence[Mapping[str, Any]]) -> None:
    """Fail early, naming the problem: an empty pool, or rows without the s1K columns the outputs need."""
    if not rows:
        raise ValueError("the question pool is empty: nothing to curate")
    columns = set().union(*(r.keys() for r in rows[: min(len(rows), 100)]))
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"the question pool is missing required columns {missing}; it has {sorted(columns)}")


@dataclasses.dataclass
class CurationResult:
    """Everything a run produced: the selection, the per-stage counts and every drop with its rule."""

    selected: list[dict[str, Any]]
    stages: list[tuple[str, int]]
    drops: list[Drop]
    domains_before: dict[str, int]
    domains_after: dict[str, int]
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def drop_table(self) -> dict[str, dict[str, int]]:
        """{stage: {rule: rows dropped}} in pipeline order; sums match the stage report's differences."""
        table: dict[str, dict[str, int]] = {}
        for d in self.drops:
            table.setdefault(d.stage, collections.Counter())[d.rule] += 1
        return {stage: dict(counts) for stage, counts in table.items()}

    def report(self) -> dict[str, Any]:
        return {
            "stages": [{"stage": s, "rows": n} for s, n in self.stages],
            "drops": self.drop_table(),
            "domains_before_selection": self.domains_before,
            "domains_after_selection": self.domains_after,
            **self.details,
        }


def _plain(value: Any) -> dict[str, Any]:
    """A ConfigDict or mapping as a plain dict (adapters take plain keyword dicts)."""
    return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def build_reference_models(cfg: Any, solvers: Mapping[str, Solver] | None = None) -> list[ReferenceModel]:
    """Reference models from ``cfg.difficulty.models``; an injected solver wins over one built from ``model_path``."""
    models = []
    for m in cfg.difficulty.models:
        name = m["name"]
        solver = (solvers or {}).get(name)
        if solver is None and m.get("model_path"):
            solver = make_model_solver(m["model_path"], m.get("tokenizer_path") or None, _plain(cfg.difficulty.budget))
        models.append(ReferenceModel(name=name, column=m.get("column", ""), solver=solver))
    return models


def build_domain_classifier(cfg: Any) -> DomainClassifier:
    """The configured classifier: keyword rules over msc.json, or the LM classifier over s1jax.generate."""
    div = cfg.diversity
    if div.classifier == "keywords":
        return KeywordDomainClassifier(label=div.domain_label)
    if div.classifier == "lm":
        if not div.lm.model_path:
            raise ValueError("diversity.classifier='lm' needs diversity.lm.model_path")
        generate_fn = make_model_solver(
            div.lm.model_path, div.lm.tokenizer_path or None, _plain(div.lm.budget), response="answer"
        )
        return LMDomainClassifier(generate_fn, label=div.domain_label)
    raise ValueError(f"diversity.classifier must be 'keywords' or 'lm', got {div.classifier!r}")


def _assign_domains(rows: list[dict[str, Any]], column: str, classifier: DomainClassifier) -> int:
    """Fill ``domain`` from ``column`` where present, else from the classifier (one batched call); returns how many
    rows the classifier labelled."""
    todo = []
    for r in rows:
        value = r.get(column) if column else None
        if value is not None and str(value).strip():
            r["domain"] = str(value).strip()
        else:
            todo.append(r)
    if todo:
        labels = classifier([str(r["question"]) for r in todo])
        if len(labels) != len(todo):
            raise ValueError(f"domain classifier returned {len(labels)} labels for {len(todo)} questions")
        for r, label in zip(todo, labels):
            r["domain"] = label
    return len(todo)


def run_curation(
    rows: Sequence[Mapping[str, Any]],
    cfg: Any,
    *,
    solvers: Mapping[str, Solver] | None = None,
    grade_fn: GradeFn | None = None,
    count_tokens: CountTokens | None = None,
    domain_classifier: DomainClassifier | None = None,
    eval_questions: Sequence[str] | None = None,
) -> CurationResult:
    """Run every enabled stage on ``rows`` (not modified: the pipeline works on copies).

    Injected callables replace the ones the config would build: ``solvers`` by reference-model name,
    ``grade_fn(response, reference)``, ``count_tokens(text)``, ``domain_classifier(questions) -> labels`` and
    ``eval_questions`` (decontamination texts; else loaded from ``cfg.decontam``).
    """
    validate_pool(rows)
    work = []
    for i, r in enumerate(rows):
        row = dict(r)
        row["_row_id"] = i
        row["thinking_trajectories"] = as_trajectories(row.get("thinking_trajectories"))
        work.append(row)
    stages: list[tuple[str, int]] = [("loaded", len(work))]
    drops: list[Drop] = []
    details: dict[str, Any] = {}

    if cfg.decontam.enabled:
        if eval_questions is None:
            counts, eval_questions = load_eval_questions(
                cfg.decontam.eval_sets, cfg.decontam.data_dir, cfg.decontam.skip_missing, cfg.decontam.use_benchmarks,
                benchmark_questions,
            )
            details["decontamination_eval_sets"] = counts
        index = build_ngram_index(eval_questions, cfg.decontam.ngram, cfg.decontam.min_words)
        work, dropped = decontaminate(work, index, cfg.decontam.ngram, tuple(cfg.decontam.fields))
        drops += dropped
        stages.append(("decontaminated", len(work)))

    work, dropped, after_group = apply_quality(work, cfg.quality)
    drops += dropped
    stages += [(f"quality:{g}", after_group[g]) for g in QUALITY_GROUPS]

    diff = cfg.difficulty
    counter = count_tokens or make_token_counter(cfg.tokens.tokenizer_path or None)
    models = build_reference_models(cfg, solvers) if diff.enabled else []
    if diff.enabled and grade_fn is None and any(m.solver is not None for m in models):
        grade_fn = make_default_grade_fn(diff.grade_kind)
    work, dropped, model_stats = apply_difficulty(
        work, models, grade_fn, counter, short_circuit=diff.short_circuit, reference_field=diff.reference_field
    )
    drops += dropped
    details["difficulty_models"] = model_stats
    if diff.enabled:
        stages.append(("difficulty", len(work)))

    div = cfg.diversity
    if not work:
        raise ValueError("no questions survive decontamination, quality and difficulty filtering: nothing to select")
    classifier = domain_classifier or build_domain_classifier(cfg)
    details["domains_classified"] = _assign_domains(work, div.domain_column, classifier)
    domains_before = dict(collections.Counter(r["domain"] for r in work).most_common())
    if div.enabled:
        pre = [r for r in work if is_preselected(r, div.preselect.rules, div.preselect.require_correct_column)]
        if len(pre) > div.num_select:
            if div.preselect.on_overflow != "truncate":
                raise ValueError(
                    f"{len(pre)} questions match diversity.preselect but num_select={div.num_select}; raise num_select, "
                    "tighten the preselect rules, or set diversity.preselect.on_overflow='truncate'"
                )
            pre = sorted(pre, key=lambda r: (-r["trace_tokens"], r["_row_id"]))[: div.num_select]
        pre_ids = {r["_row_id"] for r in pre}
        candidates = [r for r in work if r["_row_id"] not in pre_ids]
        selected, drawn = select_diverse(pre, candidates, div.num_select, div.seed)
        chosen = {r["_row_id"] for r in selected}
        drops += [Drop(r["_row_id"], "diversity", "not_selected") for r in work if r["_row_id"] not in chosen]
        details["preselected"] = len(pre)
        details["sampled"] = len(drawn)
        work = selected
        stages.append(("diversity", len(work)))
    domains_after = dict(collections.Counter(r["domain"] for r in work).most_common())
    if isinstance(classifier, LMDomainClassifier):
        details["domain_classifier_fallbacks"] = classifier.fallbacks
    return CurationResult(work, stages, drops, domains_before, domains_after, details)
