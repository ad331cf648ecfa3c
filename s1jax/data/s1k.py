"""s1K / s1K-1.1 / local files -> tokenized SFT examples with assistant-only loss masks.

Pipeline: :func:`load_s1k_rows` normalises any supported source to rows ``{question, thinking, attempt}`` (or
``{text}`` for pre-rendered s1K_tokenized-style data); :func:`tokenize_examples` renders them with the tokenizer's
:class:`~s1jax.tokenizer.ChatFormat` exactly like s1's ``data/tokenization.py`` and marks the loss on the assistant
turn only; :class:`s1jax.data.batching.SFTBatcher` turns examples into deterministic, resumable batches.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from s1jax.data.sources import read_raw_rows
from s1jax.tokenizer import Tokenizer

__all__ = ["Example", "TokenizeStats", "load_s1k_rows", "normalize_s1k_rows", "render_rows", "tokenize_examples",
           "fit_example", "no_examples_error"]


# Column pairs (thinking, attempt) per trace source. s1K's original columns hold the Gemini traces.
_TRACE_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "gemini": [("gemini_thinking_trajectory", "gemini_attempt"), ("thinking_trajectories", "attempt")],
    "deepseek": [("deepseek_thinking_trajectory", "deepseek_attempt")],
}


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------


def _join_thinking(value: Any, where: str) -> str:
    """s1K stores ``thinking_trajectories`` as list[str] (joined with newlines, as s1 does); s1K-1.1 as str."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return "\n".join(str(v) for v in value)
    raise ValueError(f"{where}: thinking trace must be a string or a list of strings, got {type(value).__name__}")


def _pick_trace_columns(columns: set[str], trace: str | None, source: str) -> tuple[str, str]:
    present = sorted(columns)
    if trace is None:
        # s1.1's recipe trains on DeepSeek-R1 traces; plain s1K only has the Gemini ones.
        for name in ("deepseek", "gemini"):
            for think_col, attempt_col in _TRACE_COLUMNS[name]:
                if think_col in columns and attempt_col in columns:
                    return think_col, attempt_col
        raise ValueError(
            f"{source}: no thinking/attempt columns found (need thinking_trajectories+attempt, "
            f"gemini_thinking_trajectory+gemini_attempt or deepseek_thinking_trajectory+deepseek_attempt, "
            f"or a pre-rendered 'text' column); columns present: {present}"
        )
    if trace not in _TRACE_COLUMNS:
        raise ValueError(f"trace must be 'gemini', 'deepseek' or None, got {trace!r}")
    for think_col, attempt_col in _TRACE_COLUMNS[trace]:
        if think_col in columns and attempt_col in columns:
            return think_col, attempt_col
    think_col, attempt_col = _TRACE_COLUMNS[trace][0]
    missing = [c for c in (think_col, attempt_col) if c not in columns]
    raise ValueError(f"{source}: trace={trace!r} needs missing column(s) {missing}; columns present: {present}")


def load_s1k_rows(
    source: str | pathlib.Path,
    *,
    trace: Literal["gemini", "deepseek"] | None = None,
    split: str = "train",
    tfds_dir: str = "",
) -> list[dict[str, str]]:
    """Load s1K-style data and normalise it to ``{"question", "thinking", "attempt"}`` rows.

    ``source``: a hub dataset name (loaded with ``datasets.load_dataset``), a local ``.parquet``/``.jsonl``/``.json``
    file or directory of them, or ``tfds:NAME/VERSION`` built under ``tfds_dir`` (:mod:`s1jax.data.sources`).
    ``trace`` picks s1K-1.1's Gemini or DeepSeek columns; ``None`` takes DeepSeek where present (the s1.1 recipe),
    else s1K's ``thinking_trajectories``. Data with a ``text`` column and no ``question``
    (s1K_tokenized style, already rendered) comes back as ``{"text"}`` rows.
    """
    raw, name = read_raw_rows(source, split, tfds_dir=tfds_dir)
    return normalize_s1k_rows(raw, name, trace=trace)


def normalize_s1k_rows(
    raw: Sequence[Mapping[str, Any]], name: str, *, trace: Literal["gemini", "deepseek"] | None = None
) -> list[dict[str, str]]:
    """Raw s1K / s1K-1.1 / s1K_tokenized rows (columns as on the hub) -> ``{question, thinking, attempt}`` or
    ``{text}`` rows; see :func:`load_s1k_rows`. ``name`` names the source in errors."""
    if not raw:
        raise ValueError(f"{name}: dataset is empty (0 rows)")
    columns = set(raw[0].keys())
    if "text" in columns and "question" not in columns:
        out = []
        for i, r in enumerate(raw):
            text = r.get("text")
            if not isinstance(text, str):
                raise ValueError(f"{name} row {i}: 'text' must be a string, got {type(text).__name__}")
            out.append({"text": text})
        return out
    if "question" not in columns:
        raise ValueError(f"{name}: missing column(s) ['question']; columns present: {sorted(columns)}")
    think_col, attempt_col = _pick_trace_columns(columns, trace, name)
    rows: list[dict[str, str]] = []
    for i, r in enumerate(raw):
        where = f"{name} row {i}"
        missing = [c for c in ("question", think_col, attempt_col) if r.get(c) is None]
        if missing:
            raise ValueError(f"{where}: missing value(s) for column(s) {missing}")
        rows.append(
            {
                "question": str(r["question"]),
                "thinking": _join_thinking(r[think_col], where),
                "attempt": str(r[attempt_col]),
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------------------------------
# Tokenization
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Example:
    """One tokenized SFT example.

    ``loss_mask[t]`` is True where token ``t`` is a training target (a completion token). The train step computes the
    loss of ``logits[t - 1]`` against ``input_ids[t]`` weighted by ``loss_mask[t]``.
    """

    input_ids: np.ndarray  # int32 [L]
    loss_mask: np.ndarray  # bool [L]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclasses.dataclass
class TokenizeStats:
    """What tokenization did to the dataset; logged at the start of training."""

    total: int = 0  # rows in
    kept: int = 0  # examples out
    truncated: int = 0  # kept, but cut to block_size
    dropped_overlong: int = 0  # overlong="drop": longer than block_size
    dropped_no_loss: int = 0  # prompt alone fills block_size: no target tokens left
    tokens: int = 0  # tokens in kept examples
    loss_tokens: int = 0  # target tokens in kept examples
    max_length: int = 0  # longest kept example
    max_untruncated_length: int = 0  # longest example before truncation

    @property
    def dropped(self) -> int:
        return self.dropped_overlong + self.dropped_no_loss

    def as_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "dropped": self.dropped}


def _split_rendered(text: str, header: str, where: str) -> tuple[str, str]:
    """Split a pre-rendered chat text after the first assistant header: s1's SFT collator trains on what follows
    ``<|im_start|>assistant\\n``."""
    idx = text.find(header)
    if idx < 0:
        raise ValueError(f"{where}: pre-rendered text has no assistant header {header!r}")
    cut = idx + len(header)
    return text[:cut], text[cut:]


def render_rows(
    rows: Sequence[Mapping[str, Any]], tokenizer: Tokenizer, *, system: str | None = None
) -> list[tuple[str, str]]:
    """``(prompt, completion)`` strings for each row, via the tokenizer's chat format."""
    chat = tokenizer.chat
    pairs: list[tuple[str, str]] = []
    for i, r in enumerate(rows):
        if "text" in r and "question" not in r:
            pairs.append(_split_rendered(str(r["text"]), chat.assistant_start, f"row {i}"))
        else:
            missing = [c for c in ("question", "thinking", "attempt") if c not in r]
            if missing:
                raise ValueError(f"row {i}: missing key(s) {missing}; keys present: {sorted(r)}")
            pairs.append(chat.render_training(str(r["question"]), str(r["thinking"]), str(r["attempt"]), system))
    return pairs


def fit_example(
    prompt: Sequence[int], completion: Sequence[int], *, block_size: int, overlong: str, stats: TokenizeStats
) -> Example | None:
    """One tokenized (prompt, completion) pair -> the example trained on (truncated to ``block_size``), or None
    when it is dropped; counts what happened in ``stats``. The one place the overlong rules live."""
    p, c = list(prompt), list(completion)
    length = len(p) + len(c)
    stats.max_untruncated_length = max(stats.max_untruncated_length, length)
    if length > block_size:
        if overlong == "drop":
            stats.dropped_overlong += 1
            return None
        if len(p) >= block_size:
            stats.dropped_no_loss += 1
            return None
        c = c[: block_size - len(p)]
        stats.truncated += 1
    if not c:
        stats.dropped_no_loss += 1
        return None
    ids = np.asarray(p + c, dtype=np.int32)  # [L]
    mask = np.zeros(ids.shape, dtype=np.bool_)  # [L]
    mask[len(p) :] = True
    stats.kept += 1
    stats.tokens += int(ids.shape[0])
    stats.loss_tokens += len(c)
    stats.max_length = max(stats.max_length, int(ids.shape[0]))
    return Example(input_ids=ids, loss_mask=mask)


def no_examples_error(stats: TokenizeStats, *, block_size: int, overlong: str, min_prompt: int) -> ValueError:
    """The error when tokenization kept nothing: block_size is too small for these prompts."""
    if overlong == "drop" and stats.dropped_overlong:
        return ValueError(
            f"all {stats.total} examples are longer than block_size={block_size} and overlong='drop' dropped "
            f"them (shortest prompt: {min_prompt} tokens, longest example: {stats.max_untruncated_length})"
        )
    return ValueError(
        f"block_size={block_size} is smaller than the prompts: no example has a completion token left "
        f"(shortest prompt: {min_prompt} tokens)"
    )


def check_tokenize_args(block_size: int, overlong: str) -> None:
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}")
    if overlong not in ("truncate", "drop"):
        raise ValueError(f"overlong must be 'truncate' or 'drop', got {overlong!r}")


def tokenize_examples(
    rows: Iterable[Mapping[str, Any]],
    tokenizer: Tokenizer,
    *,
    block_size: int,
    overlong: Literal["truncate", "drop"] = "truncate",
    system: str | None = None,
) -> tuple[list[Example], TokenizeStats]:
    """Tokenize rows into examples whose loss covers the assistant turn only.

    Prompt and completion are tokenized separately and concatenated. With ChatML the result equals tokenizing the
    joined string (the completion starts with a special token), but splitting makes the mask boundary exact for any
    chat format or pre-rendered text: a BPE merge can never straddle it, so every target token comes from the
    completion and no prompt token is trained on.

    ``overlong="truncate"`` (s1's behaviour: the trainer cuts at block_size) keeps the first ``block_size`` tokens;
    ``"drop"`` discards longer examples. An example whose prompt alone fills the block has no targets and is
    dropped either way; if nothing is left a ValueError says block_size is too small.
    """
    check_tokenize_args(block_size, overlong)
    rows = list(rows)
    if not rows:
        raise ValueError("no rows to tokenize (empty dataset)")
    pairs = render_rows(rows, tokenizer, system=system)
    prompt_ids = tokenizer.encode_batch([p for p, _ in pairs])
    completion_ids = tokenizer.encode_batch([c for _, c in pairs])

    stats = TokenizeStats(total=len(rows))
    examples: list[Example] = []
    min_prompt = min(len(p) for p in prompt_ids)
    for p, c in zip(prompt_ids, completion_ids):
        example = fit_example(p, c, block_size=block_size, overlong=overlong, stats=stats)
        if example is not None:
            examples.append(example)
    if not examples:
        raise no_examples_error(stats, block_size=block_size, overlong=overlong, min_prompt=min_prompt)
    return examples, stats
