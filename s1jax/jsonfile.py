"""Reading the small JSON files checkpoints and tokenizers carry (config.json, s1jax_model.json, tokenizer_config.json).

One rule for all of them: a missing file is a FileNotFoundError naming it, a malformed one a ValueError naming it and
the fix, never a bare ``JSONDecodeError`` that leaves the user guessing which file broke.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["read_json"]


def read_json(path: str | os.PathLike[str], *, what: str = "") -> Any:
    """The parsed content of ``path``; ``what`` names the file's role in the missing-file message."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {what or os.path.basename(path)} at {path!r}")
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"malformed JSON in {path!r}: {e}; fix or re-download the file") from e
