"""Rows from local data files: the one reader behind every loader (s1K, pools, benchmarks, question lists).

``.jsonl`` (one object per line), ``.json`` (a list of objects, an object holding such a list, or JSON lines under
a .json name) and ``.parquet``; a directory is the concatenation of its row files, a split-named file winning.
Errors name the file and, for JSON lines, the line.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

__all__ = ["ROW_FILE_SUFFIXES", "read_rows", "read_row_source"]

ROW_FILE_SUFFIXES = (".parquet", ".jsonl", ".json")
_LIST_KEYS = ("data", "rows", "train", "test", "examples")


def _json_lines(text: str, path: pathlib.Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON line: {e}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object per line, got {type(row).__name__}")
            rows.append(row)
    return rows


def _json_document(text: str, path: pathlib.Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _json_lines(text, path)  # several objects: JSON lines under a .json name
    if isinstance(data, dict):
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
            data = lists[0] if lists else [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path}: expected a JSON list of objects")
    return data


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of one local ``.jsonl`` / ``.json`` / ``.parquet`` file."""
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix not in (".jsonl", ".json"):
        raise ValueError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .parquet)")
    text = path.read_text(encoding="utf-8")
    return _json_lines(text, path) if suffix == ".jsonl" else _json_document(text, path)


def read_row_source(source: str | os.PathLike, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a file, or of every row file under a directory (``{split}*`` files only when there are such)."""
    path = pathlib.Path(source).expanduser()
    if not path.is_dir():
        return read_rows(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in ROW_FILE_SUFFIXES)
    if split:
        named = [p for p in files if p.stem == split or p.stem.startswith(f"{split}-")]
        files = named or files
    if not files:
        raise ValueError(f"no .parquet/.jsonl/.json files in directory {str(path)!r}")
    return [row for f in files for row in read_rows(f)]
