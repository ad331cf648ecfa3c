"""Run fingerprints: an eval output directory belongs to exactly one model, prompt, benchmark and set of settings.

A resumed eval reuses the generations already in ``results.jsonl``; that is only sound when everything that
determines a generation is unchanged. ``fingerprint.json`` (written when generation starts) records it:

* the model: a content digest of the weights (every file's size, first 4 MiB and last 1 MiB: the safetensors /
  GGUF header, the tensor index and real tensor bytes; file names relative to the checkpoint, so a copied
  checkpoint still matches) and the ``model`` group's dtype/attention settings;
* the tokenizer files (``tokenizer.json``, ``tokenizer_config.json`` with its chat template, ...); the chat format
  follows from them and the ``system`` prompt, which is part of the settings;
* every config field that changes a generation (sampling, budget fields, seeds, prompt options, method settings);
* the benchmark name and a digest of its items (id, prompt text, reference, choices);
* the s1jax version.

Fields that only *grow* a run are left out: ``budgets``, ``limit``, ``num_ignore``, ``steps``, ``majority_samples``
and the method switches add records next to the old ones; the report then selects exactly the records of the
current settings (:mod:`s1jax.eval.selection`). Fields that change nothing about a generation (``batch_size``,
``max_cache_len``, ``progress``, ``output_dir`` ...) are left out too. A field not named in either list is
fingerprinted, so a new config field can only make resume stricter, never mix runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import s1jax

__all__ = [
    "FINGERPRINT_FILE", "RUN_CONFIG_FILE", "OUTPUT_FILES", "EXTENDABLE_FIELDS", "RUNTIME_FIELDS", "file_digest",
    "model_identity", "tokenizer_identity", "items_digest", "build_fingerprint", "fingerprint_digest",
    "diff_fingerprints", "ResumeDecision", "check_output_dir", "default_output_dir", "read_fingerprint",
    "write_run_files", "versions", "remove_outputs", "FingerprintMismatch",
]

FINGERPRINT_FILE = "fingerprint.json"
RUN_CONFIG_FILE = "run_config.json"
# Everything `s1jax eval` writes into its output directory (what `overwrite` removes; nothing else is touched).
OUTPUT_FILES = ("results.jsonl", "summary.json", "results.md", "scaling.png", FINGERPRINT_FILE, RUN_CONFIG_FILE)
OUTPUT_PATTERNS = (r"results_.+\.json", r"samples_.+\.jsonl")

HEAD_BYTES = 4 << 20
TAIL_BYTES = 1 << 20
FORMAT_VERSION = 1

# Fields that add records without invalidating the old ones.
EXTENDABLE_FIELDS = frozenset({
    "budgets", "limit", "num_ignore", "steps", "majority_samples", "budget_forcing", "num_ignore_sweep",
    "token_conditional", "token_conditional_bf", "step_conditional", "step_conditional_bf", "class_conditional",
    "class_conditional_bf", "rejection_sampling", "majority_vote",
})
# Fields that do not change what is generated, or are replaced by a content digest (paths).
RUNTIME_FIELDS = frozenset({
    "output_dir", "overwrite", "batch_size", "call_size", "max_cache_len", "progress", "save_token_ids", "grade_timeout_s",
    "data_path", "data_revision", "tfds_dir", "model.path", "model.tokenizer", "lmeval_outputs", "bootstrap_samples",
})
# Groups of the same kind: how the run is laid out over devices and hosts (a resume may change the mesh).
RUNTIME_GROUPS = ("mesh.", "distributed.")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
                   "s1jax_tokenizer.json", "generation_config.json")


def file_digest(path: str) -> str:
    """sha256 of a file's size, first ``HEAD_BYTES`` and last ``TAIL_BYTES`` (whole file when smaller): cheap on a
    60 GB checkpoint, yet it sees the header/index and real tensor bytes, so a fine-tuned copy differs."""
    size = os.path.getsize(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(HEAD_BYTES))
        if size > HEAD_BYTES:
            f.seek(max(HEAD_BYTES, size - TAIL_BYTES))
            h.update(f.read(TAIL_BYTES))
    return h.hexdigest()


def _dir_files(root: str, skip_names: Iterable[str] = ()) -> dict[str, str]:
    """``{relative path: file_digest}`` of every regular file under ``root`` (hidden entries skipped)."""
    skip = set(skip_names)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name in skip:
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                out[os.path.relpath(full, root).replace(os.sep, "/")] = file_digest(full)
    return out


def _combine(files: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(files), sort_keys=True).encode()).hexdigest()


def model_identity(path: str) -> dict[str, Any]:
    """What the weights at ``path`` are: a digest over the files (tokenizer files excluded: they have their own
    entry), their count, and ``config.json`` / ``s1jax_model.json`` when present (readable in a diff).

    A path that does not exist locally (a hub id such as ``org/name@rev``) is identified by its string; loading
    it resolves or rejects it later."""
    path = os.path.expanduser(path)
    if os.path.isfile(path):
        return {"kind": "file", "name": os.path.basename(path), "digest": file_digest(path)}
    if os.path.isdir(path):
        files = _dir_files(path, skip_names=TOKENIZER_FILES)
        ident: dict[str, Any] = {"kind": "dir", "files": len(files), "digest": _combine(files)}
        for meta in ("config.json", "s1jax_model.json"):
            p = os.path.join(path, meta)
            if os.path.isfile(p):
                try:
                    with open(p, encoding="utf-8") as f:
                        ident[meta] = json.load(f)
                except (OSError, ValueError):
                    pass  # the digest still covers it; load_model reports the broken file
        return ident
    return {"kind": "hub", "id": path}


def tokenizer_identity(path: str) -> dict[str, Any]:
    """Digest of the tokenizer files at ``path`` (a file, or the known tokenizer files of a directory)."""
    path = os.path.expanduser(path)
    if os.path.isfile(path):
        return {"kind": "file", "name": os.path.basename(path), "digest": file_digest(path)}
    if os.path.isdir(path):
        present = [n for n in TOKENIZER_FILES if os.path.isfile(os.path.join(path, n))]
        files = {n: file_digest(os.path.join(path, n)) for n in present}
        return {"kind": "dir", "files": sorted(files), "digest": _combine(files)}
    return {"kind": "hub", "id": path}


def items_digest(items: Sequence[Any]) -> str:
    """sha256 over what the model sees and is graded against: id, prompt text, reference, kind, choices."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.id, it.prompt_text, it.answer, it.kind, list(it.choices)], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def _config_dict(cfg: Any) -> dict[str, Any]:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def build_fingerprint(cfg: Any, items: Sequence[Any]) -> dict[str, Any]:
    """The fingerprint of an eval config (an ``ml_collections.ConfigDict`` or mapping) over ``items`` (all items
    of the benchmark, before ``limit``). Reads only small parts of the weight files; loads nothing."""
    flat = _flatten(_config_dict(cfg))
    settings = {k: v for k, v in sorted(flat.items())
                if k not in EXTENDABLE_FIELDS and k not in RUNTIME_FIELDS and not k.startswith(RUNTIME_GROUPS)}
    model_path = str(flat.get("model.path", ""))
    return {
        "format": FORMAT_VERSION,
        "s1jax_version": s1jax.__version__,
        "model": model_identity(model_path) if model_path else {"kind": "none"},
        "tokenizer": tokenizer_identity(str(flat.get("model.tokenizer") or model_path)) if model_path else {},
        "benchmark": {"name": str(flat.get("benchmark", "")), "items": len(items), "digest": items_digest(items)},
        "settings": settings,
    }


def fingerprint_digest(fp: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()


def _short(value: Any, width: int = 48) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    if re.fullmatch(r"'[0-9a-f]{64}'", text):
        return text[1:13]  # a digest: the first 12 hex digits say enough
    return text if len(text) <= width else text[: width - 3] + "..."


_MISSING = object()


def diff_fingerprints(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``["settings.system: '' -> 'Be brief.'", ...]``: every leaf that differs, in key order."""
    a, b = _flatten(old), _flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va != vb:
            sa = "(absent)" if va is _MISSING else _short(va)
            sb = "(absent)" if vb is _MISSING else _short(vb)
            out.append(f"{key}: {sa} -> {sb}")
    return out


def read_fingerprint(out_dir: str) -> dict[str, Any] | None:
    path = os.path.join(out_dir, FINGERPRINT_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"malformed {path!r} ({e}); use a new --config.output_dir or "
                             f"--config.overwrite=true") from e


def _existing_outputs(out_dir: str) -> list[str]:
    if not os.path.isdir(out_dir):
        return []
    names = []
    for name in sorted(os.listdir(out_dir)):
        if name in OUTPUT_FILES or any(re.fullmatch(p, name) for p in OUTPUT_PATTERNS):
            names.append(name)
    return names


@dataclass(frozen=True)
class ResumeDecision:
    """What to do with ``out_dir``: "new" (nothing there), "resume" (same fingerprint) or "overwrite" (remove the
    previous run's files when generation starts). ``differences`` says why an overwrite is needed."""

    action: str
    out_dir: str
    differences: tuple[str, ...] = ()


class FingerprintMismatch(ValueError):
    """The output directory holds another run; the message lists what differs and how to proceed."""


def check_output_dir(out_dir: str, fp: Mapping[str, Any], overwrite: bool = False) -> ResumeDecision:
    """Compare ``fp`` with the run already in ``out_dir``; raises :class:`FingerprintMismatch` (a ValueError) when
    they differ and ``overwrite`` is off. Reads only; call it before loading the model."""
    existing = _existing_outputs(out_dir)
    if not existing:
        return ResumeDecision("new", out_dir)
    old = read_fingerprint(out_dir)
    if old is None:
        diffs = (f"{FINGERPRINT_FILE}: absent (written by an s1jax without run fingerprints, or not by s1jax eval)",)
    else:
        diffs = tuple(diff_fingerprints(old, fp))
    if not diffs:
        return ResumeDecision("resume", out_dir)
    if overwrite:
        return ResumeDecision("overwrite", out_dir, diffs)
    shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
    raise FingerprintMismatch(
        f"output_dir {out_dir!r} holds a run with different settings ({shown}); resuming would mix the two runs: "
        f"pick a new --config.output_dir (or leave it empty for one per model and settings), or pass "
        f"--config.overwrite=true to delete that run's results")


def remove_outputs(out_dir: str) -> list[str]:
    """Delete the files a previous ``s1jax eval`` wrote in ``out_dir`` (only those); returns their names."""
    names = _existing_outputs(out_dir)
    for name in names:
        os.remove(os.path.join(out_dir, name))
    return names


def _slug(text: str) -> str:
    text = text.rstrip("/\\")
    base = os.path.basename(text) if os.path.exists(os.path.expanduser(text)) else text.replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", base).strip("_") or "model"


def default_output_dir(root: str, benchmark: str, model_path: str, fp: Mapping[str, Any]) -> str:
    """``<root>/<benchmark>/<model name>-<fingerprint digest[:8]>``: one directory per model, benchmark and
    settings, so two models (or two system prompts) never share a directory, while a rerun with the same settings
    (or more budgets, a larger limit) lands in the same one and resumes."""
    return os.path.join(root, benchmark, f"{_slug(os.path.normpath(model_path))}-{fingerprint_digest(fp)[:8]}")


def versions() -> dict[str, Any]:
    """Versions of s1jax, Python, the numerical stack and the git commit of the source tree (when it is one)."""
    import platform
    import subprocess
    from importlib import metadata

    out: dict[str, Any] = {"s1jax": s1jax.__version__, "python": platform.python_version(),
                           "platform": platform.platform()}
    for pkg in ("jax", "jaxlib", "flax", "numpy", "ml_collections", "tokenizers", "math-verify", "sympy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        out["git_commit"] = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                                           timeout=5, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


def write_run_files(out_dir: str, fp: Mapping[str, Any], cfg: Any, argv: Sequence[str] | None = None) -> None:
    """``fingerprint.json`` (the resume key) and ``run_config.json`` (the resolved config, versions, command line)
    beside the results. The fingerprint is written once; run_config.json is refreshed by every run."""
    import datetime

    fp_path = os.path.join(out_dir, FINGERPRINT_FILE)
    if not os.path.isfile(fp_path):
        with open(fp_path, "w", encoding="utf-8") as f:
            json.dump(fp, f, indent=2, sort_keys=True, default=str)
    run = {"fingerprint_digest": fingerprint_digest(fp), "config": _config_dict(cfg), "versions": versions(),
           "argv": list(argv) if argv is not None else None,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    with open(os.path.join(out_dir, RUN_CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(run, f, indent=2, default=str)
