"""``s1jax parity``: does s1jax compute what transformers computes for this checkpoint?

- :mod:`s1jax.parity.metrics`: max |Δlogit|, per-token KL, top-1, token agreement / first divergence (NumPy).
- :mod:`s1jax.parity.reference`: the s1 budget-forcing loop as the PyTorch evaluation code runs it (plain Python).
- :mod:`s1jax.parity.torch_reference`: transformers loading, logits and greedy segments (torch is a test extra).
- :mod:`s1jax.parity.runner`: both frameworks per dtype, one at a time, checked against thresholds.
"""

from s1jax.parity.metrics import LogitStats, TokenStats, logit_stats, token_stats
from s1jax.parity.runner import ParityReport, Thresholds, run_parity

__all__ = ["LogitStats", "TokenStats", "logit_stats", "token_stats", "ParityReport", "Thresholds", "run_parity"]
