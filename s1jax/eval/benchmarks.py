"""Evaluation sets: AIME24, AIME24 "nofigures" (s1's AIME set), MATH500, GPQA Diamond, and any JSONL of
question/answer pairs.

Each loader reads a local file (.jsonl / .json / .parquet with the hub dataset's columns); without a path it reads
the copy shipped in ``data/eval`` (AIME24, aime24_nofigures, MATH500: see data/eval/README.md for sources and
licences) and only then the hub via ``datasets.load_dataset`` (GPQA Diamond, which is gated and not shipped).
Every item becomes an :class:`EvalItem` whose ``prompt_text`` is the user turn exactly as s1's
lm-evaluation-harness fork renders it, so accuracy is comparable with the paper:

* AIME24 / MATH500: the problem text as is (no instruction; s1 asks for nothing).
* GPQA Diamond: ``"{Question}\\n\\nA) c1\\nB) c2\\nC) c3\\nD) c4"`` (s1's ``QUERY_TEMPLATE``), the four answers
  shuffled. s1 shuffles with the unseeded global RNG; we seed per item so reruns and resumes see the same order.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from s1jax.data.files import read_rows
from s1jax.data.sources import read_raw_rows
from s1jax.data.tfds.reader import is_tfds_source

__all__ = ["EvalItem", "BENCHMARKS", "LMEVAL_TASKS", "SHIPPED_DATA", "load_benchmark", "load_rows", "gpqa_prompt",
           "shipped_path", "canonical_name", "known_names"]

GPQA_TEMPLATE = "{question}\n\nA) {c0}\nB) {c1}\nC) {c2}\nD) {c3}"
GPQA_LETTER_INSTRUCTION = "\n\nAnswer with the letter (A, B, C or D) of the correct choice."


@dataclass(frozen=True)
class EvalItem:
    """One question: ``answer`` is the reference (integer string, LaTeX, or a letter A-D for GPQA)."""

    id: str
    problem: str
    answer: str
    kind: str  # "aime" | "math" | "gpqa"
    prompt_text: str
    choices: tuple[str, ...] = field(default=())
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


# name -> (hub repo, hub config, split, kind)
BENCHMARKS: dict[str, tuple[str, str | None, str, str]] = {
    "aime24": ("HuggingFaceH4/aime_2024", None, "train", "aime"),
    # s1 reports AIME24 on this variant: figure code ([asy]) kept only where the problem needs it
    "aime24_nofigures": ("simplescaling/aime24_nofigures", None, "train", "aime"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test", "math"),
    "gpqa": ("Idavidrein/gpqa", "gpqa_diamond", "train", "gpqa"),
}
# The task names of s1's lm-evaluation-harness fork (results_*.json / samples_<task>_*.jsonl use them).
LMEVAL_TASKS = {"aime24": "aime24", "aime24_nofigures": "aime24_nofigures", "math500": "openai_math",
                "gpqa": "gpqa_diamond_openai"}
# Copies shipped in <repo>/data/eval (data/eval/README.md: source, licence).
SHIPPED_DATA = {"aime24": "aime24.jsonl", "aime24_nofigures": "aime24_nofigures.jsonl", "math500": "math500.jsonl"}
_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data", "eval")
_ALIASES = {"aime": "aime24", "aime_2024": "aime24", "math": "math500", "math-500": "math500", "openai_math": "math500",
            "gpqa_diamond": "gpqa", "gpqa-diamond": "gpqa", "gpqa_diamond_openai": "gpqa"}
_GPQA_GATED = ("GPQA Diamond (Idavidrein/gpqa) is gated on the Hugging Face hub and not shipped: accept its terms "
               "at https://huggingface.co/datasets/Idavidrein/gpqa and log in (`huggingface-cli login`), or pass a "
               "local copy with --config.data_path=FILE (.jsonl/.parquet with columns Question, Correct Answer, "
               "Incorrect Answer 1..3)")


def known_names() -> list[str]:
    """Every name ``load_benchmark`` accepts: the benchmarks, their aliases, and the generic "jsonl"."""
    return sorted(BENCHMARKS) + sorted(_ALIASES) + ["jsonl"]


def canonical_name(name: str) -> str:
    """``"gpqa_diamond"`` -> ``"gpqa"``, ``"MATH"`` -> ``"math500"``: the key of :data:`BENCHMARKS`."""
    return _ALIASES.get(name.lower(), name.lower())


def shipped_path(name: str) -> str | None:
    """The shipped copy of benchmark ``name`` in data/eval, or None (not shipped, or not in this checkout)."""
    fname = SHIPPED_DATA.get(canonical_name(name))
    path = os.path.join(_DATA_DIR, fname) if fname else ""
    return path if path and os.path.isfile(path) else None


def load_rows(path: str, tfds_dir: str = "") -> list[dict[str, Any]]:
    """Rows of a local .jsonl / .json / .parquet benchmark file, or of a ``tfds:NAME/VERSION`` dataset built under
    ``tfds_dir`` by ``s1jax data prepare`` (s1jax.data.sources)."""
    if is_tfds_source(path):
        return read_raw_rows(path, None, tfds_dir=tfds_dir)[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"benchmark file not found: {path!r}")
    return read_rows(path)


def _hub_rows(repo: str, config: str | None, split: str, revision: str | None = None) -> list[dict[str, Any]]:
    """Rows from the hub (needs network or a warm HF cache), at ``revision`` (a commit sha pins it)."""
    import datasets

    args = (repo, config) if config else (repo,)
    try:
        ds = datasets.load_dataset(*args, split=split, revision=revision or None)
    except Exception as e:  # noqa: BLE001 - gated, offline, missing: one message that says what to do
        if repo == BENCHMARKS["gpqa"][0]:
            raise ValueError(f"{_GPQA_GATED} ({type(e).__name__}: {e})") from e
        raise ValueError(f"could not load {repo}{'@' + revision if revision else ''} from the hub "
                         f"({type(e).__name__}: {e}); pass a local file with --config.data_path=FILE, or check the "
                         f"network / HF_HUB_OFFLINE / HF_DATASETS_OFFLINE") from e
    return [dict(r) for r in ds]


def _column(row: dict[str, Any], names: Sequence[str], where: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise KeyError(f"{where}: none of the columns {list(names)} present; row has {sorted(row)}")


def _answer_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def gpqa_prompt(question: str, choices: Sequence[str], ask_letter: bool = False) -> str:
    """s1's GPQA user turn; ``ask_letter`` appends an explicit letter instruction (not in s1; helps small models)."""
    text = GPQA_TEMPLATE.format(question=question.strip(), c0=choices[0], c1=choices[1], c2=choices[2], c3=choices[3])
    return text + (GPQA_LETTER_INSTRUCTION if ask_letter else "")


def _gpqa_item(row: dict[str, Any], index: int, seed: int, ask_letter: bool, where: str) -> EvalItem:
    question = str(_column(row, ["Question", "question"], where))
    correct = str(_column(row, ["Correct Answer"], where)).strip()
    wrong = [str(_column(row, [f"Incorrect Answer {k}"], where)).strip() for k in (1, 2, 3)]
    rid = str(row.get("Record ID") or row.get("id") or index)
    choices = [correct, *wrong]
    random.Random(f"gpqa:{seed}:{rid}").shuffle(choices)  # str seeds hash via sha512: stable across processes
    letter = "ABCD"[choices.index(correct)]
    return EvalItem(rid, question, letter, "gpqa", gpqa_prompt(question, choices, ask_letter), tuple(choices),
                    {"correct_text": correct})


def load_benchmark(
    name: str,
    path: str | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
    kind: str | None = None,
    gpqa_ask_letter: bool = False,
    revision: str | None = None,
    tfds_dir: str = "",
) -> list[EvalItem]:
    """Load ``name`` ("aime24" | "aime24_nofigures" | "math500" | "gpqa" | "jsonl") from ``path`` if given, else
    from the shipped copy in data/eval, else from the hub (at ``revision``).

    ``jsonl`` is the generic loader: any local file with a ``problem`` or ``question`` column and an ``answer``
    column, graded as ``kind`` (default "math"). ``limit`` keeps the first N items (N <= 0 keeps all). ``path`` may
    be ``tfds:aime24/1.0.0`` (a TFDS dataset under ``tfds_dir``).
    """
    key = canonical_name(name)
    if key in ("jsonl", "generic", "local"):
        if not path:
            raise ValueError("the generic benchmark needs a path to a local .jsonl/.json/.parquet file")
        rows, item_kind = load_rows(path, tfds_dir), kind or "math"
    elif key in BENCHMARKS:
        repo, config, split, item_kind = BENCHMARKS[key]
        path = path or shipped_path(key)
        rows = load_rows(path, tfds_dir) if path else _hub_rows(repo, config, split, revision)
    else:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)} + 'jsonl'")
    if limit is not None and limit > 0:
        rows = rows[:limit]
    where = path or name
    items: list[EvalItem] = []
    for i, row in enumerate(rows):
        if item_kind == "gpqa" and key != "jsonl":
            items.append(_gpqa_item(row, i, seed, gpqa_ask_letter, f"{where} row {i}"))
            continue
        problem = str(_column(row, ["problem", "question", "Question"], f"{where} row {i}"))
        answer = _answer_str(_column(row, ["answer", "Answer", "final_answer"], f"{where} row {i}"))
        rid = str(row.get("unique_id") or row.get("id") or i)
        items.append(EvalItem(rid, problem, answer, item_kind, problem))
    if not items:
        raise ValueError(f"benchmark {name!r} from {where!r} has no items")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):  # resume keys on ids: make them unique if the source is not
        items = [EvalItem(f"{it.id}#{i}", it.problem, it.answer, it.kind, it.prompt_text, it.choices, it.meta)
                 for i, it in enumerate(items)]
    return items
