"""Types every curation stage shares."""

from __future__ import annotations

import dataclasses

__all__ = ["Drop"]


@dataclasses.dataclass(frozen=True)
class Drop:
    """Why one pool row left the pipeline: the stage, the rule that fired first, and a human-readable detail."""

    row_id: int
    stage: str
    rule: str
    detail: str = ""
