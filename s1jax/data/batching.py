"""Deterministic, resumable SFT batches for single- and multi-process training.

``batch_at(step)`` is a pure function of ``(examples, seed, step)``: each epoch is a permutation drawn from a numpy
Generator seeded with ``(seed, epoch)``, so resuming a run needs nothing but the step number, and every process
computes the same global batch and keeps only its own rows. The padded length of a batch is computed from the
*global* batch, so all processes produce arrays of the same shape (required to assemble a global jax.Array).

s1 trains without packing (one example per row, right padding); packing is available for throughput.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from s1jax.data.s1k import Example

__all__ = ["SFTBatcher", "pack_examples"]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pack_examples(lengths: Sequence[int], block_size: int) -> list[list[int]]:
    """Group example indices into rows of at most ``block_size`` tokens (first-fit decreasing).

    Deterministic for given lengths (ties broken by index). FFD wastes little space and packing once, before
    shuffling, keeps the number of rows, hence steps per epoch, fixed.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        n = lengths[i]
        if n > block_size:
            raise ValueError(f"example {i} has {n} tokens, more than block_size={block_size}")
        for r, space in enumerate(free):
            if n <= space:
                rows[r].append(i)
                free[r] -= n
                break
        else:
            rows.append([i])
            free.append(block_size - n)
    return rows


@dataclasses.dataclass
class SFTBatcher:
    """Batches of tokenized examples; see the module docstring for the determinism/resume contract.

    Each batch (this process's slice of the global batch) is a dict of numpy arrays, b = global_batch_size /
    process_count, T = padded length:
      input_ids [b, T] int32 (pad_id on padding), loss_mask [b, T] float32 (1 = target token),
      attention_mask [b, T] int32 (1 = real token, right padding), positions [b, T] int32,
      segment_ids [b, T] int32 (1, 2, ... per packed example; without packing 1 on real tokens; 0 on padding).
    With packing, attention must not cross segments (compare segment_ids) and positions restart per segment.

    T is the longest example of the global batch rounded up to ``seq_len_multiple`` and capped at ``block_size``
    (fewer recompilations than exact lengths, far less padding than always padding to the block), or exactly
    ``block_size`` with ``pad_to_block=True`` or ``packing=True``.
    """

    examples: Sequence[Example] = dataclasses.field(repr=False)
    global_batch_size: int
    block_size: int | None = None  # default: the longest example
    seq_len_multiple: int = 128
    pad_to_block: bool = False
    pad_id: int = 0
    seed: int = 0
    process_index: int = 0
    process_count: int = 1
    packing: bool = False
    # False (default, as the HF Trainer used by s1): the last partial batch of an epoch is kept, its missing rows
    # padded with zero-loss rows, so s1K gives ceil(1000 / 16) * 5 = 315 steps. True: it is dropped.
    drop_last: bool = False

    def __post_init__(self) -> None:
        if not self.examples:
            raise ValueError("SFTBatcher needs at least one example")
        if self.global_batch_size <= 0:
            raise ValueError(f"global_batch_size must be positive, got {self.global_batch_size}")
        if self.process_count <= 0 or not 0 <= self.process_index < self.process_count:
            raise ValueError(f"process_index={self.process_index} is not in [0, process_count={self.process_count})")
        if self.global_batch_size % self.process_count:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is not divisible by process_count={self.process_count}"
            )
        if self.seq_len_multiple <= 0:
            raise ValueError(f"seq_len_multiple must be positive, got {self.seq_len_multiple}")
        # Examples read on demand (s1jax.data.records.RecordExamples) know their lengths without being read.
        known = getattr(self.examples, "lengths", None)
        lengths = [int(n) for n in known] if known is not None else [len(e) for e in self.examples]
        if self.block_size is None:
            self.block_size = max(lengths)
        longest = max(lengths)
        if longest > self.block_size:
            raise ValueError(f"an example has {longest} tokens, more than block_size={self.block_size}")
        # A unit is one row of the global batch: an example, or a packed group of examples.
        self._units: list[list[int]] = (
            pack_examples(lengths, self.block_size) if self.packing else [[i] for i in range(len(lengths))]
        )
        if self.drop_last and len(self._units) < self.global_batch_size:
            what = "packed rows" if self.packing else "examples"
            raise ValueError(
                f"only {len(self._units)} {what} for global_batch_size={self.global_batch_size}: "
                "not even one full batch per epoch"
            )
        self._lengths = lengths
        self._perm_cache: tuple[int, np.ndarray] | None = None

    # -- schedule ------------------------------------------------------------------------------------------------------

    @property
    def local_batch_size(self) -> int:
        return self.global_batch_size // self.process_count

    @property
    def num_rows(self) -> int:
        """Rows per epoch before batching (examples, or packed rows)."""
        return len(self._units)

    @property
    def steps_per_epoch(self) -> int:
        """Global batches per epoch; a last partial batch counts unless ``drop_last``."""
        if self.drop_last:
            return len(self._units) // self.global_batch_size
        return -(-len(self._units) // self.global_batch_size)

    def total_steps(self, num_epochs: int) -> int:
        return self.steps_per_epoch * num_epochs

    def epoch_permutation(self, epoch: int) -> np.ndarray:  # int64 [num_rows]
        """The order of rows in ``epoch``; a pure function of (seed, epoch)."""
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm_cache = (epoch, rng.permutation(len(self._units)))
        return self._perm_cache[1]

    def global_rows_at(self, step: int) -> list[list[int]]:
        """Example indices of every row of the global batch at ``step`` (for inspection and tests)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        epoch, i = divmod(step, self.steps_per_epoch)
        perm = self.epoch_permutation(epoch)[i * self.global_batch_size : (i + 1) * self.global_batch_size]
        return [self._units[int(u)] for u in perm]

    # -- batches -------------------------------------------------------------------------------------------------------

    def seq_len_at(self, step: int) -> int:
        """T of the batch at ``step``, identical on every process."""
        assert self.block_size is not None
        if self.pad_to_block or self.packing:
            return self.block_size
        longest = max(sum(self._lengths[j] for j in row) for row in self.global_rows_at(step))
        return min(_round_up(longest, self.seq_len_multiple), self.block_size)

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows ``[process_index * b, (process_index + 1) * b)`` of the global batch at ``step``."""
        rows = self.global_rows_at(step)
        t = self.seq_len_at(step)
        b = self.local_batch_size
        mine = rows[self.process_index * b : (self.process_index + 1) * b]  # short in a last partial batch
        needed = [j for row in mine for j in row]
        take = getattr(self.examples, "take", None)  # one batched read of this process's examples, if supported
        fetched = dict(zip(needed, take(needed) if take else [self.examples[j] for j in needed]))
        input_ids = np.full((b, t), self.pad_id, dtype=np.int32)  # [b, T]
        loss_mask = np.zeros((b, t), dtype=np.float32)  # [b, T]
        segment_ids = np.zeros((b, t), dtype=np.int32)  # [b, T]
        positions = np.zeros((b, t), dtype=np.int32)  # [b, T]
        for r, row in enumerate(mine):
            offset = 0
            for seg, j in enumerate(row, start=1):
                ex = fetched[j]
                n = len(ex)
                input_ids[r, offset : offset + n] = ex.input_ids
                loss_mask[r, offset : offset + n] = ex.loss_mask
                segment_ids[r, offset : offset + n] = seg
                positions[r, offset : offset + n] = np.arange(n, dtype=np.int32)
                offset += n
        return {
            "input_ids": input_ids,
            "loss_mask": loss_mask,
            "attention_mask": (segment_ids > 0).astype(np.int32),  # [b, T]
            "positions": positions,
            "segment_ids": segment_ids,
        }

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.iterate(0)

    def iterate(self, start_step: int = 0, num_steps: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Batches from ``start_step`` on (epochs roll over), ``num_steps`` of them or forever."""
        step = start_step
        while num_steps is None or step < start_step + num_steps:
            yield self.batch_at(step)
            step += 1

    # -- resume --------------------------------------------------------------------------------------------------------

    def state(self, step: int) -> dict[str, Any]:
        """Checkpointable iterator state. The step is all that is needed; the rest guards against resuming with
        different data or settings, which would silently change the batch order."""
        return {
            "step": int(step),
            "seed": int(self.seed),
            "num_rows": len(self._units),
            "global_batch_size": int(self.global_batch_size),
            "packing": bool(self.packing),
        }

    def restore(self, state: dict[str, Any]) -> int:
        """The step to resume from; raises if ``state`` came from a batcher over other data/settings."""
        mine = self.state(int(state["step"]))
        diff = {k: (state.get(k), v) for k, v in mine.items() if k != "step" and k in state and state[k] != v}
        if diff:
            raise ValueError(f"batcher state does not match this batcher (saved, current): {diff}")
        return mine["step"]
