"""The TFDS datasets s1jax builds, as plain data: name, version, split, columns and where the rows come from.

Kept free of ``tensorflow_datasets`` so the CLI can check a source (does the built dataset have this schema?) and
normalise rows without importing it; :mod:`s1jax.data.tfds.builders` turns each :class:`DatasetSchema` into a
``GeneratorBasedBuilder``. A column is ``text`` (str), ``text_list`` (list[str], s1K's ``thinking_trajectories``) or
an integer dtype. Columns marked optional may be absent from the source rows (they are stored as "" / 0), the others
must be present in every row.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["Column", "DatasetSchema", "SCHEMAS", "schema_for", "normalize_row", "EVAL_DATA_DIR"]

COLUMN_KINDS = ("text", "text_list", "int32", "int64")
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
EVAL_DATA_DIR = os.path.join(_REPO_ROOT, "data", "eval")  # the shipped AIME24 / MATH500 files


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of COLUMN_KINDS
    optional: bool = False  # absent in the source -> "" / [] / 0
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class DatasetSchema:
    """One dataset: the TFDS name and version, its single split, its columns, and its default source."""

    name: str  # TFDS name (snake_case; the directory under the data dir)
    version: str
    release_notes: str
    split: str
    default_source: str  # hub dataset name or a local file
    description: str
    columns: tuple[Column, ...]

    def signature(self) -> dict[str, str]:
        """``{column: kind}``: what :func:`s1jax.data.tfds.reader` compares with a built dataset's features.json."""
        return {c.name: c.kind for c in self.columns}


_S1K_COMMON = (
    Column("question", "text", doc="the problem"),
    Column("solution", "text", optional=True, doc="the reference solution"),
    Column("cot_type", "text", optional=True, doc="math | science | crossword | ..."),
    Column("source_type", "text", optional=True, doc="origin dataset of the question"),
    Column("metadata", "text", optional=True, doc="the source's metadata, a JSON/repr string"),
)

SCHEMAS: dict[str, DatasetSchema] = {
    s.name: s
    for s in (
        DatasetSchema(
            name="s1k",
            version="1.0.0",
            release_notes="s1K (Muennighoff et al., 2025): 1,000 questions with Gemini Thinking traces.",
            split="train",
            default_source="simplescaling/s1K",
            description="s1K: 1,000 curated questions with Gemini Flash Thinking reasoning traces and attempts.",
            columns=_S1K_COMMON
            + (
                Column("thinking_trajectories", "text_list", doc="the reasoning trace (joined with newlines)"),
                Column("attempt", "text", doc="the answer after the trace"),
            ),
        ),
        DatasetSchema(
            name="s1k_1_1",
            version="1.0.0",
            release_notes="s1K-1.1: the s1K questions with DeepSeek-R1 traces (the s1.1 recipe) beside Gemini's.",
            split="train",
            default_source="simplescaling/s1K-1.1",
            description="s1K-1.1: the s1K questions with Gemini and DeepSeek-R1 traces, attempts and grades.",
            columns=_S1K_COMMON
            + (
                Column("gemini_thinking_trajectory", "text"),
                Column("gemini_attempt", "text"),
                Column("deepseek_thinking_trajectory", "text"),
                Column("deepseek_attempt", "text"),
                Column("gemini_grade", "text", optional=True),
                Column("gemini_grade_reason", "text", optional=True),
                Column("deepseek_grade", "text", optional=True),
                Column("deepseek_grade_reason", "text", optional=True),
            ),
        ),
        DatasetSchema(
            name="aime24",
            version="1.0.0",
            release_notes="The 30 AIME 2024 problems (data/eval/aime24.jsonl, as HuggingFaceH4/aime_2024).",
            split="train",
            default_source=os.path.join(EVAL_DATA_DIR, "aime24.jsonl"),
            description="AIME 2024: 30 problems with integer answers.",
            columns=(
                Column("id", "int64"),
                Column("problem", "text"),
                Column("solution", "text", optional=True),
                Column("answer", "text"),
                Column("url", "text", optional=True),
            ),
        ),
        DatasetSchema(
            name="math500",
            version="1.0.0",
            release_notes="MATH500 (Lightman et al.; data/eval/math500.jsonl, as HuggingFaceH4/MATH-500).",
            split="test",
            default_source=os.path.join(EVAL_DATA_DIR, "math500.jsonl"),
            description="MATH500: the 500-problem test subset of MATH chosen for PRM800K.",
            columns=(
                Column("unique_id", "text"),
                Column("problem", "text"),
                Column("solution", "text", optional=True),
                Column("answer", "text"),
                Column("subject", "text", optional=True),
                Column("level", "int32", optional=True),
            ),
        ),
    )
}


def schema_for(name: str) -> DatasetSchema:
    """The schema of TFDS dataset ``name``; a ValueError lists the known ones."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown TFDS dataset {name!r}; s1jax builds {sorted(SCHEMAS)}")
    return SCHEMAS[name]


def _text(value: Any, where: str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (dict, list, tuple)):  # metadata read from parquet as a struct: keep it as JSON text
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if value is None:
        raise ValueError(f"{where}: value is null")
    return str(value)


def _text_list(value: Any, where: str) -> list[str]:
    if isinstance(value, (str, bytes)):
        return [_text(value, where)]  # a single trace string: one element
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: expected a list of strings, got {type(value).__name__}")
    return [_text(v, where) for v in value]


def _integer(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected an integer, got {value!r}") from None


def normalize_row(schema: DatasetSchema, row: Mapping[str, Any], index: int, source: str) -> dict[str, Any]:
    """One source row -> the example the builder writes: exactly the schema's columns, typed; extra source columns
    are dropped. A missing required column raises one line naming the row, the columns and the source."""
    missing = [c.name for c in schema.columns if not c.optional and row.get(c.name) is None]
    if missing:
        raise ValueError(
            f"{source} row {index}: missing column(s) {missing} for TFDS dataset {schema.name!r}; "
            f"row has {sorted(row)}"
        )
    out: dict[str, Any] = {}
    for c in schema.columns:
        where = f"{source} row {index} column {c.name!r}"
        value = row.get(c.name)
        if c.kind == "text":
            out[c.name] = "" if value is None else _text(value, where)
        elif c.kind == "text_list":
            out[c.name] = [] if value is None else _text_list(value, where)
        else:
            out[c.name] = 0 if value is None else _integer(value, where)
    return out
