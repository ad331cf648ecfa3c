"""Which records of an output directory belong to the current eval settings.

A directory may hold more than the current run asks for: an earlier run with more budgets, a larger ``limit`` or
other methods switched on (extending a run is allowed; see :mod:`s1jax.eval.fingerprint`). The report must count
exactly the generations the current settings define, so it is computed from :func:`select_records`, never from
the whole JSONL: a rerun with ``limit=4 budgets=(16,)`` reports n=4 at max=16 only.

The keys mirror the labels the runners in :mod:`s1jax.eval.scaling` write ((method, point, item id, sample));
``tests/test_eval_fingerprint.py`` checks that a run with every method on produces exactly the planned keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from s1jax.eval.report import MAJORITY, record_key
from s1jax.eval.scaling import conditional_points, majority_point

__all__ = ["planned_keys", "select_records"]

Key = tuple[str, str, str, int]


def _points(cfg: Any) -> list[tuple[str, list[str], int]]:
    """(method, point labels, samples per item) of every enabled method."""
    out: list[tuple[str, list[str], int]] = []
    budgets = sorted({int(b) for b in cfg.budgets})
    if cfg.budget_forcing:
        out.append(("budget_forcing", [f"max={b}" for b in budgets], 1))
    if cfg.num_ignore_sweep:
        out.append(("num_ignore", [f"ignore={int(n)}" for n in cfg.num_ignore], 1))
    for kind, on, on_bf, kind_budgets in (
        ("token", cfg.token_conditional, cfg.token_conditional_bf, cfg.budgets),
        ("step", cfg.step_conditional, cfg.step_conditional_bf, cfg.steps),
        ("class", cfg.class_conditional, cfg.class_conditional_bf, cfg.class_budgets),
    ):
        for bf, enabled in ((False, on), (True, on_bf)):
            if enabled:
                pts = conditional_points(kind, list(kind_budgets), budget_forcing=bf,
                                         uncapped_tokens=cfg.budget.uncapped_thinking_tokens,
                                         tokens_per_step=cfg.tokens_per_step, class_budgets=tuple(cfg.class_budgets))
                out.append((f"{kind}_conditional" + ("+budget_forcing" if bf else ""), [p.label for p in pts], 1))
    if cfg.rejection_sampling:
        out.append(("rejection_sampling", [f"max={b}" for b in budgets], 1))
    if cfg.majority_vote:
        out.append((MAJORITY, [majority_point(max(budgets))], int(cfg.majority_samples)))
    return out


def planned_keys(cfg: Any, item_ids: Iterable[str]) -> set[Key]:
    """Every (method, point, item id, sample) the eval config ``cfg`` generates for ``item_ids``."""
    ids = [str(i) for i in item_ids]
    keys: set[Key] = set()
    for method, labels, samples in _points(cfg):
        for label in labels:
            for item_id in ids:
                for s in range(samples):
                    keys.add((method, label, item_id, s))
    return keys


def select_records(records: Sequence[dict[str, Any]], keys: set[Key], fingerprint: str | None = None,
                   ) -> list[dict[str, Any]]:
    """The records whose key is planned (first occurrence of each key, file order), and, when ``fingerprint`` is
    given, that carry it (records of another run appended by hand are left out)."""
    out, seen = [], set()
    for r in records:
        k = record_key(r)
        if k in keys and k not in seen and (fingerprint is None or r.get("fingerprint") == fingerprint):
            seen.add(k)
            out.append(r)
    return out
