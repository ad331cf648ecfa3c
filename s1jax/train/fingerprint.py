"""The run fingerprint: every setting that decides what a resumed run computes, saved with each checkpoint and
compared on resume, so a run cannot silently continue with another learning rate, other data or other precision.

The fingerprint is the flattened ``model``, ``data`` and ``train`` groups (``"train.lr": 1e-05``, ...) without the
operational fields in ``FREE`` (where outputs go, how often to log or save, memory knobs that do not change the
math), plus ``data.sha256`` and ``data.num_examples`` of the tokenized examples (which covers the data file's content
and the tokenizer/chat template, wherever the files now live). A field that is new since the checkpoint was written
is not compared. Fields in ``FIXED`` can never change on resume (the saved arrays would not fit); any other field may
change if the user lists it in ``train.allow_config_change`` ("train.lr,data.sha256"), and the checkpoints written
after that carry the new fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from s1jax.train.errors import RunChangedError

__all__ = ["FREE", "FIXED", "run_fingerprint", "examples_digest", "fingerprint_diff", "check_resume"]

GROUPS = ("model", "data", "train")

# Changing these never changes what the run computes: outputs, logging, checkpoint cadence, failure limits, and
# memory/speed knobs (rematerialisation, loss chunking, attention kernel, batch padding) that keep the math.
FREE = frozenset({
    "model.path", "model.tokenizer", "model.attention_impl",
    "data.source", "data.tfds_dir", "data.seq_len_multiple", "data.pad_to_block",
    "train.output_dir", "train.local_dir", "train.stop_at_step", "train.remat", "train.loss_chunk",
    "train.nan_policy", "train.nan_skip_max_consecutive", "train.nan_skip_max_total",
    "train.log_every", "train.save_every", "train.keep_checkpoints", "train.async_checkpoint",
    "train.checkpoint_timeout_s", "train.metrics_timeout_s", "train.resume", "train.resume_step",
    "train.allow_config_change", "train.tensorboard", "train.progress_bar", "train.peak_flops",
    "train.export_hf", "train.export_dtype",
})
# The saved arrays have these shapes/dtypes: restoring under other values cannot work (start a new run instead).
FIXED = frozenset({"model.preset", "model.param_dtype"})


def _plain(value: Any) -> Any:
    """JSON-stable form: tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def examples_digest(examples: Sequence[Any]) -> str:
    """SHA-256 over every tokenized example's ``input_ids`` and ``loss_mask`` (in order)."""
    h = hashlib.sha256()
    for e in examples:
        ids = np.ascontiguousarray(e.input_ids, dtype=np.int32)
        mask = np.ascontiguousarray(e.loss_mask, dtype=np.uint8)
        h.update(np.int64(ids.shape[0]).tobytes())
        h.update(ids.tobytes())
        h.update(mask.tobytes())
    return h.hexdigest()


def run_fingerprint(cfg: Any, *, data_sha256: str, num_examples: int) -> dict[str, Any]:
    """``{"group.field": value}`` for every fingerprinted field of ``cfg`` (see the module docstring)."""
    out: dict[str, Any] = {}
    for group in GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        for field, value in node.items():
            name = f"{group}.{field}"
            if name in FREE or hasattr(value, "items"):
                continue
            out[name] = _plain(value)
    if cfg.model.get("path"):
        out.pop("model.preset", None)  # weights from a path: the preset is not used
    out["data.sha256"] = data_sha256
    out["data.num_examples"] = int(num_examples)
    return json.loads(json.dumps(out))  # exactly what a JSON round trip through the checkpoint gives back


def fingerprint_diff(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (saved, current)}`` for fields present in both that differ."""
    return {k: (saved[k], current[k]) for k in sorted(saved) if k in current and saved[k] != current[k]}


def _short(value: Any) -> str:
    """JSON text of a value; a SHA-256 hex digest shortened to its first 12 digits."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "..."
    return json.dumps(value)


def check_resume(saved: dict[str, Any] | None, current: dict[str, Any], allow: str, where: str) -> list[str]:
    """Raise ``RunChangedError`` (one line: every changed field, saved -> now, and the fix) unless every change is
    allowed; returns the allowed changes as ``"field: old -> new"`` strings to log. ``saved`` None (a checkpoint from
    before fingerprints) accepts anything."""
    if not saved:
        return []
    diff = fingerprint_diff(saved, current)
    allowed = {a.strip() for a in str(allow or "").split(",") if a.strip()}
    fixed = sorted(k for k in diff if k in FIXED)
    refused = sorted(k for k in diff if k not in allowed or k in FIXED)
    described = [f"{k}: {_short(diff[k][0])} -> {_short(diff[k][1])}" for k in sorted(diff)]
    if fixed:
        raise RunChangedError(
            f"resuming {where} with a changed {', '.join(fixed)} is impossible (the saved arrays are "
            f"{', '.join(f'{k}={_short(saved[k])}' for k in fixed)}); changed: {'; '.join(described)}. "
            "Restore the original value, or start a new run in another train.output_dir."
        )
    if refused:
        raise RunChangedError(
            f"resuming {where} with a different run: {'; '.join(described)}. Restore the original values, use a new "
            f"train.output_dir, or accept the change with --config.train.allow_config_change={','.join(refused)}"
        )
    return described
