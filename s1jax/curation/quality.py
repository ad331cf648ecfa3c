"""Quality stage of s1K curation (s1 paper, Section 2): API errors, formatting problems, duplicates.

s1 went 59,029 -> 54,116 by dropping rows whose generation failed (API errors) and -> 51,581 by dropping low-quality
formatting (references to images that are not there, broken ASCII art, ...). Here every such check is a *named rule*
with its own ``enabled`` switch and parameters in the config, so a recipe can be tuned and the effect of each rule is
visible in the per-rule drop table. Rules run in a fixed order and the first rule that fires owns the drop, which
makes the table add up to the row difference exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from s1jax.curation.types import Drop
from s1jax.curation.text import normalize_text, normalize_words, stable_hash, trace_text, word_ngrams

__all__ = [
    "Drop",
    "QUALITY_RULES",
    "default_quality_config",
    "apply_quality",
    "field_text",
]


def field_text(row: Mapping[str, Any], field: str) -> str:
    """A row's text for ``field``; ``thinking_trajectories`` is joined so rules see one string."""
    if field == "thinking_trajectories":
        return trace_text(dict(row))
    value = row.get(field)
    return "" if value is None else str(value)


# --------------------------------------------------------------------------------------------------------------------
# Per-row rules. Each returns a detail string when the row must be dropped, else None.
# --------------------------------------------------------------------------------------------------------------------

_ASY_BLOCK = re.compile(r"\[asy\](.*?)\[/asy\]", re.DOTALL | re.IGNORECASE)


def _has_asy_code(text: str) -> bool:
    return any(m.group(1).strip() for m in _ASY_BLOCK.finditer(text))


def _rule_missing_text(row: Mapping[str, Any], cfg: Any) -> str | None:
    """Empty question, trace or attempt: the generation never produced what SFT trains on."""
    for field in cfg.fields:
        if not field_text(row, field).strip():
            return f"empty {field}"
    return None


def _rule_api_error(row: Mapping[str, Any], cfg: Any) -> str | None:
    """A trace/attempt that is an API error message instead of a model output (rate limits, quota, 5xx)."""
    prefixes = [p.lower() for p in cfg.prefix_markers]
    markers = [m.lower() for m in cfg.markers]
    for field in cfg.fields:
        text = field_text(row, field).strip().lower()
        for p in prefixes:
            if text.startswith(p):
                return f"{field} starts with {p!r}"
        for m in markers:
            if m in text:
                return f"{field} contains {m!r}"
    return None


def _rule_image_reference(row: Mapping[str, Any], cfg: Any) -> str | None:
    """The text points at a figure/image that the row does not contain (no [asy] code to stand in for it)."""
    for field in cfg.fields:
        text = field_text(row, field)
        if _has_asy_code(text):
            continue  # the [asy] code *is* the figure (MATH-style problems)
        for pattern in cfg.patterns:
            m = re.search(pattern, text, flags=re.IGNORECASE)
            if m:
                return f"{field} references an absent figure: {m.group(0)!r}"
    return None


def _rule_empty_asy(row: Mapping[str, Any], cfg: Any) -> str | None:
    """``[asy]`` with no code (or never closed): the diagram was lost when the problem was scraped."""
    for field in cfg.fields:
        text = field_text(row, field)
        opens = len(re.findall(r"\[asy\]", text, flags=re.IGNORECASE))
        if not opens:
            continue
        blocks = _ASY_BLOCK.findall(text)
        if len(blocks) < opens:
            return f"{field} has an unclosed [asy]"
        if any(not b.strip() for b in blocks):
            return f"{field} has an empty [asy] block"
    return None


def _rule_ascii_art(row: Mapping[str, Any], cfg: Any) -> str | None:
    """Lines made mostly of drawing characters: an ASCII diagram, which text-only datasets almost always mangle."""
    symbols = set(cfg.symbols)
    for field in cfg.fields:
        text = _ASY_BLOCK.sub(" ", field_text(row, field))
        art_lines = 0
        for line in text.splitlines():
            chars = [c for c in line if not c.isspace()]
            if len(chars) < cfg.min_line_chars:
                continue
            share = sum(c in symbols for c in chars) / len(chars)
            if share >= cfg.min_symbol_share:
                art_lines += 1
        if art_lines >= cfg.min_lines:
            return f"{field} has {art_lines} ASCII-art lines"
    return None


def _rule_unbalanced_delimiters(row: Mapping[str, Any], cfg: Any) -> str | None:
    """Odd ``$`` or unmatched braces / ``\\( \\)`` / ``\\[ \\]``: the text was cut inside a formula."""
    for field in cfg.fields:
        text = field_text(row, field)
        if cfg.check_dollars:
            dollars = text.replace("\\$", "").count("$")
            if dollars % 2:
                return f"{field} has an odd number of $ ({dollars})"
        if cfg.check_braces:
            plain = text.replace("\\{", "").replace("\\}", "")
            if plain.count("{") != plain.count("}"):
                return f"{field} has unbalanced braces ({plain.count('{')} {{ vs {plain.count('}')} }})"
            if text.count("\\(") != text.count("\\)") or text.count("\\[") != text.count("\\]"):
                return f"{field} has unbalanced \\( \\) or \\[ \\]"
    return None


_TERMINAL_OK = set(".?!:)]}$\"'`*|>")


def _rule_ends_mid_sentence(row: Mapping[str, Any], cfg: Any) -> str | None:
    """Text that ends on a connective or a dangling operator/comma: it was truncated.

    Deliberately conservative ("Find x" or a final choice "(D) 7" are fine): only a trailing ``, ; ( = + - \\`` or a
    last word from ``dangling_words`` counts, because many valid questions end without a period.
    """
    dangling = {w.lower() for w in cfg.dangling_words}
    for field in cfg.fields:
        text = field_text(row, field).rstrip()
        if not text:
            continue
        last = text[-1]
        if last in _TERMINAL_OK or last.isdigit():
            continue
        if last in cfg.dangling_chars:
            return f"{field} ends with {last!r}"
        words = normalize_words(text[-64:])
        if words and words[-1] in dangling and text[-1].isalpha():
            return f"{field} ends with the word {words[-1]!r}"
    return None


RowRuleFn = Callable[[Mapping[str, Any], Any], "str | None"]

# Order matters: first rule wins. (name, report group, function); groups mirror the paper's stage report.
QUALITY_RULES: tuple[tuple[str, str, RowRuleFn | None], ...] = (
    ("missing_text", "api_errors", _rule_missing_text),
    ("api_error", "api_errors", _rule_api_error),
    ("image_reference", "formatting", _rule_image_reference),
    ("empty_asy", "formatting", _rule_empty_asy),
    ("ascii_art", "formatting", _rule_ascii_art),
    ("unbalanced_delimiters", "formatting", _rule_unbalanced_delimiters),
    ("ends_mid_sentence", "formatting", _rule_ends_mid_sentence),
    ("exact_duplicate", "dedup", None),
    ("near_duplicate", "dedup", None),
)
QUALITY_GROUPS: tuple[str, ...] = ("api_errors", "formatting", "dedup")


def default_quality_config() -> ml_collections.ConfigDict:
    """Defaults for every rule; a recipe overrides fields (``--config.quality.near_duplicate.threshold=0.9``)."""
    return ml_collections.ConfigDict(
        {
            "missing_text": {"enabled": True, "fields": ["question", "thinking_trajectories", "attempt"]},
            "api_error": {
                "enabled": True,
                "fields": ["thinking_trajectories", "attempt"],
                # Matched at the start of the text: "Error:" inside a long derivation is not an API failure.
                "prefix_markers": ["error:", "error code:", "exception:", "traceback (most recent call last)"],
                # Matched anywhere: phrases no math/science trace contains.
                "markers": [
                    "rate limit",
                    "resource_exhausted",
                    "quota exceeded",
                    "internal server error",
                    "service unavailable",
                    "request timed out",
                    "too many requests",
                ],
            },
            "image_reference": {
                "enabled": True,
                "fields": ["question"],
                "patterns": [
                    r"\bsee (the )?(attached |following |accompanying )?(figure|diagram|image|picture|graph)\b",
                    r"\b(shown|depicted|illustrated|pictured) (in|on|by) the (figure|diagram|image|picture|graph)\b",
                    r"\bin the (figure|diagram|image|picture) (below|above)\b",
                    r"\b(the )?(figure|diagram|image|picture) (below|above) shows\b",
                    r"\bin the (figure|diagram|picture|image)\b",
                    r"!\[",
                    r"<image>",
                    r"<img\b",
                    r"\[(image|figure|diagram)\]",
                ],
            },
            "empty_asy": {"enabled": True, "fields": ["question"]},
            "ascii_art": {
                "enabled": True,
                "fields": ["question"],
                "symbols": "|/\\_-+*=#<>^~.:'`",
                "min_line_chars": 4,
                "min_symbol_share": 0.6,
                "min_lines": 3,
            },
            "unbalanced_delimiters": {
                "enabled": True,
                "fields": ["question", "attempt"],
                "check_dollars": True,
                "check_braces": True,
            },
            "ends_mid_sentence": {
                "enabled": True,
                "fields": ["question", "attempt"],
                "dangling_chars": ",;(=+-\\",
                "dangling_words": [
                    "the", "a", "an", "of", "and", "or", "to", "is", "are", "with", "for", "in", "that", "which",
                    "by", "from", "then", "if", "as", "at", "on", "be", "its", "their",
                ],
            },
            "exact_duplicate": {"enabled": True, "field": "question"},
            "near_duplicate": {
                "enabled": True,
                "field": "question",
                "shingle": 5,  # word n-gram size of the shingles
                "threshold": 0.8,  # exact Jaccard over shingles, checked for every LSH candidate
                "num_perm": 128,
                "bands": 32,  # num_perm / bands rows per band: catches pairs from ~Jaccard 0.5 up
                "seed": 0,
            },
        }
    )


# --------------------------------------------------------------------------------------------------------------------
# Set-level rules: duplicates (keep the first occurrence in pool order).
# --------------------------------------------------------------------------------------------------------------------

_MINHASH_PRIME = np.uint64(4294967311)  # smallest prime > 2^32: a * x + b stays below 2^64 for 32-bit x, a < 2^31


def _exact_duplicates(rows: Sequence[Mapping[str, Any]], field: str) -> dict[int, str]:
    """Row positions whose normalised ``field`` equals an earlier row's, with the kept row named in the detail."""
    seen: dict[str, int] = {}
    dropped: dict[int, str] = {}
    for i, row in enumerate(rows):
        key = normalize_text(field_text(row, field))
        if key in seen:
            dropped[i] = f"same normalised {field} as row {rows[seen[key]]['_row_id']}"
        else:
            seen[key] = i
    return dropped


def _shingles(text: str, n: int) -> np.ndarray:
    return np.unique(np.fromiter((stable_hash(g) for g in word_ngrams(normalize_words(text), n)), dtype=np.uint64))


def _near_duplicates(rows: Sequence[Mapping[str, Any]], cfg: Any) -> dict[int, str]:
    """MinHash + LSH banding to find candidate pairs, then the exact shingle Jaccard decides.

    LSH keeps it near-linear on 59K rows; the exact check means the threshold is what it says (no false positives from
    hash collisions of the sketch). Only *kept* rows enter the buckets, so a row is dropped only as a copy of a row
    that survives: "keep the first".
    """
    num_perm, bands = int(cfg.num_perm), int(cfg.bands)
    if num_perm % bands:
        raise ValueError(f"quality.near_duplicate: num_perm={num_perm} must be a multiple of bands={bands}")
    rows_per_band = num_perm // bands
    rng = np.random.default_rng(cfg.seed)
    a = rng.integers(1, 2**31 - 1, size=num_perm, dtype=np.uint64)[:, None]
    b = rng.integers(0, 2**32 - 1, size=num_perm, dtype=np.uint64)[:, None]
    buckets: dict[tuple[int, bytes], list[int]] = {}
    kept_sets: dict[int, set[int]] = {}
    dropped: dict[int, str] = {}
    for i, row in enumerate(rows):
        sh = _shingles(field_text(row, cfg.field), int(cfg.shingle))
        if sh.size == 0:
            continue  # empty text cannot be compared; missing_text handles it
        sig = ((a * sh[None, :] + b) % _MINHASH_PRIME).min(axis=1)
        keys = [(band, sig[band * rows_per_band : (band + 1) * rows_per_band].tobytes()) for band in range(bands)]
        mine = set(sh.tolist())
        match = None
        candidates = {j for key in keys for j in buckets.get(key, ())}
        for j in sorted(candidates):
            other = kept_sets[j]
            jaccard = len(mine & other) / len(mine | other)
            if jaccard >= cfg.threshold:
                match = (j, jaccard)
                break
        if match is not None:
            dropped[i] = f"Jaccard {match[1]:.2f} with row {rows[match[0]]['_row_id']}"
            continue
        kept_sets[i] = mine
        for key in keys:
            buckets.setdefault(key, []).append(i)
    return dropped


def apply_quality(
    rows: Sequence[dict[str, Any]], cfg: Any
) -> tuple[list[dict[str, Any]], list[Drop], dict[str, int]]:
    """Run the enabled rules in order; return (kept rows, drops, rows left after each rule group).

    ``cfg`` is the ``quality`` config group; a rule missing from it uses :func:`default_quality_config`'s settings, so
    old configs keep working when a rule is added.
    """
    defaults = default_quality_config()
    alive = list(rows)
    drops: list[Drop] = []
    after_group: dict[str, int] = {}
    for name, group, fn in QUALITY_RULES:
        rule_cfg = cfg[name] if (cfg is not None and name in cfg) else defaults[name]
        if rule_cfg.get("enabled", True):
            if fn is not None:
                fired = {i: d for i, r in enumerate(alive) if (d := fn(r, rule_cfg)) is not None}
            elif name == "exact_duplicate":
                fired = _exact_duplicates(alive, rule_cfg.field)
            else:
                fired = _near_duplicates(alive, rule_cfg)
            drops.extend(Drop(alive[i]["_row_id"], "quality", name, d) for i, d in sorted(fired.items()))
            alive = [r for i, r in enumerate(alive) if i not in fired]
        after_group[group] = len(alive)
    return alive, drops, after_group
