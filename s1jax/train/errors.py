"""The failures a training run reports, one class per exit code of ``s1jax train`` (see ``s1jax.exit_codes``)."""

from __future__ import annotations

__all__ = ["NonFiniteLossError", "StorageError", "NoUsableCheckpointError", "RunChangedError"]


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN/inf and ``nan_policy`` is "stop", or ``nan_policy=skip`` hit its limit."""


class StorageError(RuntimeError):
    """Writing (or reading back) the run's checkpoints or metrics failed or timed out. The last checkpoint that
    finished before the failure is intact."""


class NoUsableCheckpointError(StorageError):
    """``train.resume`` found checkpoints, but none (or not the requested ``train.resume_step``) passed verification."""


class RunChangedError(ValueError):
    """Resuming with a config whose run fingerprint differs from the checkpoint's (and the change is not allowed)."""
