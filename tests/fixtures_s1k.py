"""Writes tiny s1K / s1K-1.1 format datasets into a directory (nothing binary is committed).

Columns follow the hub datasets: s1K has question, solution, cot_type, source_type, metadata, thinking_trajectories
(list[str]) and attempt; s1K-1.1 adds gemini_/deepseek_ thinking_trajectory, attempt and grade. Questions are simple
arithmetic so tests can reason about the content; traces have several sentences and some unicode/LaTeX.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Literal


def s1k_fixture_rows(n: int = 8, variant: Literal["s1K", "s1K-1.1"] = "s1K") -> list[dict[str, Any]]:
    """The rows :func:`write_s1k_fixture` writes, as Python dicts."""
    rows = []
    for i in range(n):
        a, b = 3 + 7 * i, 11 + 5 * i
        s = a + b
        question = f"What is ${a} + {b}$? Give the exact value."
        steps = [
            f"We need to add {a} and {b}.",
            f"First, {a} + {b - b % 10} = {a + b - b % 10}.",
            f"Then adding the remaining {b % 10} gives {s}.",
            "Let me double-check: ∑ of the parts matches, so the result is consistent.",
        ][: 2 + i % 3]
        row: dict[str, Any] = {
            "question": question,
            "solution": f"${a} + {b} = {s}$",
            "cot_type": "math",
            "source_type": "fixture/arithmetic",
            "metadata": json.dumps({"index": i, "level": 1 + i % 5}),
            "thinking_trajectories": steps,
            "attempt": f"The sum is $\\boxed{{{s}}}$." if i % 2 == 0 else f"Answer: {s}",
        }
        if variant == "s1K-1.1":
            row.update(
                {
                    "gemini_thinking_trajectory": "\n".join(steps),
                    "gemini_attempt": row["attempt"],
                    "deepseek_thinking_trajectory": (
                        f"Okay, so I need to compute {a} plus {b}. Hmm, {a} + {b}... "
                        f"Wait, let me recount: {a} + {b} = {s}. Yes, {s}."
                    ),
                    "deepseek_attempt": f"**Final Answer**\n\\boxed{{{s}}}",
                    "gemini_grade": "Yes",
                    "deepseek_grade": "Yes" if i % 3 else "No",
                }
            )
        rows.append(row)
    return rows


def write_s1k_fixture(
    directory: str | pathlib.Path,
    n: int = 8,
    fmt: Literal["parquet", "jsonl"] = "parquet",
    variant: Literal["s1K", "s1K-1.1"] = "s1K",
    *,
    name: str = "train",
) -> pathlib.Path:
    """Write ``n`` rows of ``variant`` to ``directory/{name}.{fmt}`` and return the file path."""
    if variant not in ("s1K", "s1K-1.1"):
        raise ValueError(f"unknown variant {variant!r}")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = s1k_fixture_rows(n, variant)
    path = directory / f"{name}.{fmt}"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"unknown fixture format {fmt!r}")
    return path
