"""SFT examples over a random-access record source (a ``tfds.data_source``), read on demand: each host reads only
the records it needs.

The batcher (:class:`s1jax.data.batching.SFTBatcher`) needs every example's *length* on every host (the padded
length of a batch is computed from the global batch, and packing plans over all lengths), but only its own rows'
*tokens*. So :func:`record_examples` makes one sharded pass: process ``p`` of ``P`` reads and tokenizes records
``p, p + P, p + 2P, ...`` and describes each in one int32 row (outcome, lengths, a SHA-256 of the tokens); the
rows are all-gathered (the ``allgather`` callable, ``jax.experimental.multihost_utils.process_allgather`` in the
trainer) so every host knows every length, which records were kept and the data digest. After that, host ``p``
reads and tokenizes only the records of its slice of each global batch (:meth:`RecordExamples.take`).

The examples, their order and their tokens are those :func:`s1jax.data.s1k.tokenize_examples` makes from the same
rows (same renderer, same overlong rules: :func:`s1jax.data.s1k.fit_example`), so the batches equal the batches
over the JSONL file the dataset was built from. :attr:`RecordExamples.sha256` is the SHA-256 of the per-example
SHA-256s (each over the bytes :func:`s1jax.train.fingerprint.examples_digest` hashes for that example): a digest
of the same examples that needs no host to hold them all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np

from s1jax.data.s1k import (
    Example,
    TokenizeStats,
    check_tokenize_args,
    fit_example,
    no_examples_error,
    normalize_s1k_rows,
    render_rows,
)
from s1jax.data.tfds.reader import read_records
from s1jax.tokenizer import Tokenizer

__all__ = ["RecordExamples", "record_examples", "scan_shard", "merge_scans", "example_sha256"]

# Columns of a scan row (int32). Outcome: what fit_example did with the record.
ABSENT, KEPT, TRUNCATED, DROPPED_OVERLONG, DROPPED_NO_LOSS = 0, 1, 2, 3, 4
OUTCOME, LENGTH, UNTRUNCATED, PROMPT, LOSS_TOKENS = range(5)
DIGEST = slice(5, 13)  # SHA-256 as 8 int32 words
WIDTH = 13

Allgather = Callable[[np.ndarray], np.ndarray]  # [m, WIDTH] on each process -> [P, m, WIDTH]


def example_sha256(example: Example) -> bytes:
    """SHA-256 over one example's length (int64), input_ids (int32) and loss_mask (uint8) bytes."""
    ids = np.ascontiguousarray(example.input_ids, dtype=np.int32)
    mask = np.ascontiguousarray(example.loss_mask, dtype=np.uint8)
    return hashlib.sha256(np.int64(ids.shape[0]).tobytes() + ids.tobytes() + mask.tobytes()).digest()


class _Tokenize:
    """Records (dicts as the source stores them) -> examples, with the run's trace/system/block_size rules."""

    def __init__(self, tokenizer: Tokenizer, name: str, *, trace: str | None, block_size: int, overlong: str,
                 system: str | None):
        check_tokenize_args(block_size, overlong)
        self.tokenizer, self.name, self.trace = tokenizer, name, trace
        self.block_size, self.overlong, self.system = block_size, overlong, system

    def pairs(self, records: list[dict[str, Any]]) -> tuple[list[list[int]], list[list[int]]]:
        rows = normalize_s1k_rows(records, self.name, trace=self.trace)  # type: ignore[arg-type]
        pairs = render_rows(rows, self.tokenizer, system=self.system)
        return self.tokenizer.encode_batch([p for p, _ in pairs]), self.tokenizer.encode_batch([c for _, c in pairs])

    def fit(self, prompt: list[int], completion: list[int], stats: TokenizeStats) -> Example | None:
        return fit_example(prompt, completion, block_size=self.block_size, overlong=self.overlong, stats=stats)


def _outcome(stats: TokenizeStats) -> int:
    if stats.dropped_overlong:
        return DROPPED_OVERLONG
    if stats.dropped_no_loss:
        return DROPPED_NO_LOSS
    return TRUNCATED if stats.truncated else KEPT


def scan_shard(source: Sequence[Any], num_records: int, tokenize: _Tokenize, *, process_index: int,
               process_count: int, chunk: int = 256) -> np.ndarray:
    """int32 [ceil(num_records / P), WIDTH]: row t describes record ``process_index + t * P`` (ABSENT past the end)."""
    mine = list(range(process_index, num_records, process_count))
    out = np.zeros((-(-num_records // process_count), WIDTH), dtype=np.int32)
    for start in range(0, len(mine), chunk):
        ids = mine[start : start + chunk]
        prompts, completions = tokenize.pairs(read_records(source, ids))
        for t, (p, c) in enumerate(zip(prompts, completions), start=start):
            stats = TokenizeStats(total=1)
            example = tokenize.fit(p, c, stats)
            row = out[t]
            row[OUTCOME] = _outcome(stats)
            row[UNTRUNCATED] = stats.max_untruncated_length
            row[PROMPT] = len(p)
            if example is not None:
                row[LENGTH] = len(example)
                row[LOSS_TOKENS] = stats.loss_tokens
                row[DIGEST] = np.frombuffer(example_sha256(example), dtype=np.int32)
    return out


def merge_scans(gathered: np.ndarray, num_records: int) -> np.ndarray:
    """[P, m, WIDTH] from the processes -> [num_records, WIDTH] in record order (record p + t P is gathered[p, t])."""
    process_count, m, _ = gathered.shape
    table = np.transpose(gathered, (1, 0, 2)).reshape(m * process_count, WIDTH)[:num_records]
    if np.any(table[:, OUTCOME] == ABSENT):
        raise ValueError("record scan incomplete: some records were described by no process")
    return table


def _stats(table: np.ndarray) -> TokenizeStats:
    outcome = table[:, OUTCOME]
    kept = (outcome == KEPT) | (outcome == TRUNCATED)
    return TokenizeStats(
        total=int(table.shape[0]),
        kept=int(kept.sum()),
        truncated=int((outcome == TRUNCATED).sum()),
        dropped_overlong=int((outcome == DROPPED_OVERLONG).sum()),
        dropped_no_loss=int((outcome == DROPPED_NO_LOSS).sum()),
        tokens=int(table[kept, LENGTH].astype(np.int64).sum()),
        loss_tokens=int(table[kept, LOSS_TOKENS].astype(np.int64).sum()),
        max_length=int(table[kept, LENGTH].max(initial=0)),
        max_untruncated_length=int(table[:, UNTRUNCATED].max(initial=0)),
    )


class RecordExamples(Sequence[Example]):
    """The kept examples, in record order, tokenized when asked for. ``lengths`` (int64 [n]) and ``sha256`` are
    known on every host without reading the tokens; ``take(indices)`` reads just those records (one batched read)."""

    def __init__(self, source: Sequence[Any], record_ids: np.ndarray, lengths: np.ndarray, tokenize: _Tokenize,
                 sha256: str):
        self.source = source
        self.record_ids = record_ids  # int64 [n]: example j is record record_ids[j]
        self.lengths = lengths  # int64 [n]
        self.sha256 = sha256
        self._tokenize = tokenize

    def __len__(self) -> int:
        return int(self.record_ids.shape[0])

    def __getitem__(self, j: int) -> Example:  # type: ignore[override]
        if not -len(self) <= j < len(self):
            raise IndexError(j)
        return self.take([j % len(self)])[0]

    def __iter__(self) -> Iterator[Example]:
        for start in range(0, len(self), 256):
            yield from self.take(range(start, min(start + 256, len(self))))

    def take(self, indices: Sequence[int]) -> list[Example]:
        """Examples ``indices``: their records read in one ``__getitems__`` and tokenized."""
        indices = [int(j) for j in indices]
        if not indices:
            return []
        prompts, completions = self._tokenize.pairs(read_records(self.source, self.record_ids[indices].tolist()))
        out = []
        for j, p, c in zip(indices, prompts, completions):
            example = self._tokenize.fit(p, c, TokenizeStats())
            if example is None or len(example) != self.lengths[j]:
                raise ValueError(f"record {int(self.record_ids[j])} changed since the length scan (tokenizer or data "
                                 "differ between processes?)")
            out.append(example)
        return out


def record_examples(
    source: Sequence[Any],
    tokenizer: Tokenizer,
    *,
    name: str,
    block_size: int,
    overlong: Literal["truncate", "drop"] = "truncate",
    trace: Literal["gemini", "deepseek"] | None = None,
    system: str | None = None,
    max_examples: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    allgather: Allgather | None = None,
) -> tuple[RecordExamples, TokenizeStats]:
    """Lazy examples over ``source`` (the first ``max_examples`` records, 0 = all) and the tokenization stats, the
    same as :func:`s1jax.data.s1k.tokenize_examples` gives for those rows. With ``process_count > 1``, ``allgather``
    is required (every process must call this: it is a collective)."""
    num_records = len(source) if not max_examples or max_examples <= 0 else min(len(source), int(max_examples))
    if num_records == 0:
        raise ValueError(f"{name}: dataset is empty (0 rows)")
    if process_count > 1 and allgather is None:
        raise ValueError("record_examples over several processes needs an allgather")
    tokenize = _Tokenize(tokenizer, name, trace=trace, block_size=block_size, overlong=overlong, system=system)
    local = scan_shard(source, num_records, tokenize, process_index=process_index, process_count=process_count)
    gathered = np.asarray(allgather(local)) if allgather is not None else local[None]
    table = merge_scans(gathered.reshape(process_count, *local.shape), num_records)
    stats = _stats(table)
    kept = np.flatnonzero((table[:, OUTCOME] == KEPT) | (table[:, OUTCOME] == TRUNCATED))
    if kept.size == 0:
        raise no_examples_error(stats, block_size=block_size, overlong=overlong,
                                min_prompt=int(table[:, PROMPT].min()))
    digest = hashlib.sha256(np.ascontiguousarray(table[kept][:, DIGEST]).tobytes()).hexdigest()
    examples = RecordExamples(source, kept.astype(np.int64), table[kept, LENGTH].astype(np.int64), tokenize, digest)
    return examples, stats
