"""``run_parity``: one checkpoint in transformers (PyTorch) and in s1jax, per dtype: logits on the prompts, then
greedy budget forcing (the s1 reference loop on PyTorch vs ``s1jax.generate``), checked against thresholds.

Per dtype the two frameworks never hold the model at the same time: PyTorch loads it, computes its logits and its
budget-forcing reference, and frees it; then s1jax loads it. So a model that fits an accelerator once can be checked
there (a 32B model on one 141 GB GPU in bf16), and on a CPU the peak memory is one copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import s1jax
from s1jax.hub import resolve_checkpoint
from s1jax.parity import torch_reference as tr
from s1jax.parity.metrics import LogitStats, TokenStats, logit_stats, token_stats
from s1jax.parity.reference import budget_forcing_reference

__all__ = ["Thresholds", "DtypeReport", "ParityReport", "run_parity", "pad_left"]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Pass limits for one dtype (the config's ``thresholds.<dtype>`` group; derivations in configs/parity.py)."""

    max_abs_diff_rel: float  # max |Δlogit| / max |reference logit|
    max_kl: float  # per-token KL(reference || s1jax), worst position
    mean_kl: float  # per-token KL, mean over positions
    min_top1: float  # fraction of positions with the same argmax

    @property
    def tie_gap_rel(self) -> float:
        """Two implementations whose logits each lie within ``max_abs_diff_rel`` of each other can order two tokens
        differently only where the reference's gap between them is at most twice that error."""
        return 2.0 * self.max_abs_diff_rel


@dataclasses.dataclass
class DtypeReport:
    dtype: str
    logits: LogitStats
    generations: list[TokenStats]
    failures: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dict(dtype=self.dtype, logits=self.logits.to_dict(), generations=[g.to_dict() for g in self.generations],
                    failures=list(self.failures), passed=not self.failures)


@dataclasses.dataclass
class ParityReport:
    path: str
    prompts: list[str]
    results: list[DtypeReport]

    @property
    def passed(self) -> bool:
        return all(not r.failures for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return dict(path=self.path, prompts=self.prompts, results=[r.to_dict() for r in self.results],
                    passed=self.passed)

    def table(self) -> str:
        """The report as the command prints it."""
        lines = [f"{'dtype':<9} {'tokens':>6} {'max|Δlogit|':>11} {'rel':>9} {'mean KL':>9} {'max KL':>9} "
                 f"{'top-1':>7}  budget forcing (tokens agreeing, first divergence)"]
        for r in self.results:
            s = r.logits
            gens = ", ".join(_gen_cell(g) for g in r.generations) or "-"
            lines.append(f"{r.dtype:<9} {s.tokens:>6} {s.max_abs_diff:>11.3g} {s.max_abs_diff_rel:>9.2e} "
                         f"{s.mean_kl:>9.2e} {s.max_kl:>9.2e} {s.top1_agreement:>7.1%}  {gens}")
        for r in self.results:
            for f in r.failures:
                lines.append(f"FAIL {r.dtype}: {f}")
        lines.append("parity: PASS" if self.passed else "parity: FAIL")
        return "\n".join(lines)


def _gen_cell(g: TokenStats) -> str:
    if g.first_divergence is None:
        return f"{g.ref_len}/{g.ref_len} identical"
    tie = " (tie)" if g.tie else ""
    return f"{g.agreement:.0%} of {max(g.ref_len, g.ours_len)}, at {g.first_divergence}{tie}"


def pad_left(rows: Sequence[Sequence[int]], width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, mask)``, each ``[len(rows), width]``: rows right-aligned (left padding), mask 1 on real tokens."""
    ids = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        if len(r) > width:
            raise ValueError(f"prompt {i} is {len(r)} tokens, longer than logits_width={width}")
        if r:
            ids[i, width - len(r):] = r
            mask[i, width - len(r):] = 1
    return ids, mask


def _check(dtype: str, s: LogitStats, gens: Sequence[TokenStats], t: Thresholds) -> list[str]:
    out = []
    if s.max_abs_diff_rel > t.max_abs_diff_rel:
        out.append(f"max |Δlogit| {s.max_abs_diff:.3g} is {s.max_abs_diff_rel:.2e} of the largest logit "
                   f"(> thresholds.{dtype}.max_abs_diff_rel={t.max_abs_diff_rel:g})")
    if s.max_kl > t.max_kl:
        out.append(f"max per-token KL {s.max_kl:.3g} > thresholds.{dtype}.max_kl={t.max_kl:g}")
    if s.mean_kl > t.mean_kl:
        out.append(f"mean per-token KL {s.mean_kl:.3g} > thresholds.{dtype}.mean_kl={t.mean_kl:g}")
    if s.top1_agreement < t.min_top1:
        out.append(f"top-1 agreement {s.top1_agreement:.1%} < thresholds.{dtype}.min_top1={t.min_top1:g}")
    for i, g in enumerate(gens):
        if g.first_divergence is not None and not g.tie:
            gap = "unknown" if g.ref_gap is None else f"{g.ref_gap:.3g}"
            out.append(f"budget forcing on prompt {i}: token {g.first_divergence} differs (reference "
                       f"{g.ref_token}, s1jax {g.ours_token}) where the reference's logit gap is {gap}: no tie")
    return out


def run_parity(
    path: str,
    prompts: Sequence[str],
    *,
    budget: Any,
    thresholds: dict[str, Thresholds],
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    tokenizer: str = "",
    chat_format: str = "",
    system: str | None = None,
    budget_forcing_prompts: int = 2,
    budget_forcing_dtypes: Sequence[str] = ("float32",),
    logits_width: int = 0,
    torch_device: str = "auto",
    torch_threads: int = 0,
    say: Callable[[str], None] = print,
    jax_model_hook: Callable[[Any], Any] | None = None,
) -> ParityReport:
    """Compare transformers and s1jax on ``path`` (a HF directory or a hub id). ``jax_model_hook(model) -> model`` runs on each loaded s1jax model (tests use it to perturb a weight:
    a loader bug, not a checkpoint change, since both sides read the same files)."""
    tr.require_torch()
    path = resolve_checkpoint(path)  # a hub id -> its snapshot directory, so both frameworks read the same files
    tok = s1jax.load_tokenizer(tokenizer or path, chat_format=chat_format)
    texts = [tok.chat.render_prefix(q, system) + budget.thinking_start for q in prompts]
    rows = tok.encode_batch(texts)
    width = logits_width or -(-max(len(r) for r in rows) // 64) * 64
    device = tr.torch_device(torch_device, torch_threads)
    results = []
    for dtype in dtypes:
        n_bf = min(budget_forcing_prompts, len(prompts)) if dtype in budget_forcing_dtypes else 0
        # -- PyTorch: logits (one prompt at a time, left-padded to `width`), then the reference budget forcing
        say(f"[{dtype}] transformers on {device}: loading {path}")
        ref_model = tr.load_torch_model(path, dtype, device)
        vocab = min(tok.vocab_size, int(ref_model.config.vocab_size))
        ref_logits = []
        for r in rows:
            ids, mask = pad_left([r], width, tok.pad_token_id)
            ref_logits.append(tr.torch_logits(ref_model, ids, mask))
        segment = tr.torch_segment(ref_model, vocab)
        refs = [budget_forcing_reference(segment, tok, r, budget) for r in rows[:n_bf]]
        del ref_model, segment
        tr.free_memory()

        # -- s1jax: the same prompts through s1jax.forward, then s1jax.generate (the jitted engine)
        say(f"[{dtype}] s1jax: loading {path}")
        model = s1jax.load_model(path, dtype=dtype, param_dtype=dtype)
        if jax_model_hook is not None:
            model = jax_model_hook(model)
        ours_logits = []
        masks = []
        for r in rows:
            ids, mask = pad_left([r], width, tok.pad_token_id)
            ours_logits.append(np.asarray(s1jax.forward(model, ids, mask)))
            masks.append(mask)
        outs = s1jax.generate(model, tok, list(prompts[:n_bf]), budget=budget, system=system,
                              progress=False) if n_bf else []
        del model

        stats = logit_stats(np.concatenate(ref_logits), np.concatenate(ours_logits), np.concatenate(masks),
                            vocab_size=vocab)
        t = thresholds[dtype]
        tie_gap = t.tie_gap_rel * stats.max_abs_ref
        gens = [token_stats(ref["token_ids"], out.token_ids, ref["top"], tie_gap) for ref, out in zip(refs, outs)]
        results.append(DtypeReport(dtype, stats, gens, _check(dtype, stats, gens, t)))
    return ParityReport(path=path, prompts=list(prompts), results=results)
