"""Where rows come from: the one dispatch behind every loader's ``source`` string.

* ``tfds:NAME/VERSION`` (``tfds:s1k/1.0.0``): a TFDS dataset built by ``s1jax data prepare`` under a data dir
  (local or ``gs://``), read with ``tfds.data_source`` (:mod:`s1jax.data.tfds.reader`);
* a local ``.parquet`` / ``.jsonl`` / ``.json`` file or a directory of them (:mod:`s1jax.data.files`);
* anything else is a hub dataset name (``simplescaling/s1K``), loaded with ``datasets.load_dataset``.

:func:`check_source` runs the cheap checks of each kind (the file exists; the TFDS build exists with the expected
version and schema) so a command can fail with one line before it loads a model.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from s1jax.data.files import ROW_FILE_SUFFIXES, read_row_source
from s1jax.data.tfds.reader import check_built, is_tfds_source, parse_tfds_source, read_tfds_rows

__all__ = ["source_kind", "check_source", "read_raw_rows"]


def source_kind(source: str | os.PathLike) -> str:
    """``"tfds"``, ``"local"`` or ``"hub"``."""
    if is_tfds_source(source):
        return "tfds"
    text = str(source)
    path = pathlib.Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")) or path.suffix.lower() in ROW_FILE_SUFFIXES:
        return "local"
    return "hub"


def check_source(source: str, *, split: str | None = None, tfds_dir: str = "", field: str = "data.source") -> None:
    """Raise ``FileNotFoundError``/``ValueError`` (one line naming ``field``) if ``source`` cannot be read; hub
    names are not checked here (no network at validation time)."""
    if not source:
        raise ValueError(f"--config.{field} is empty (a local file, a hub dataset name or tfds:NAME/VERSION)")
    kind = source_kind(source)
    if kind == "tfds":
        try:
            check_built(source, tfds_dir, split)
        except (FileNotFoundError, ValueError) as e:
            message = str(e)
            for spec in {source, str(parse_tfds_source(source)) if message.startswith("tfds:") else source}:
                message = message.removeprefix(f"{spec}: ")
            raise type(e)(f"--config.{field}={source}: {message}") from None
    elif kind == "local" and not pathlib.Path(source).expanduser().exists():
        raise FileNotFoundError(f"--config.{field}: {source!r} does not exist (a local .parquet/.jsonl/.json file "
                                "or directory, a hub dataset name such as simplescaling/s1K, or tfds:NAME/VERSION)")


def read_raw_rows(source: str | os.PathLike, split: str | None = "train", *,
                  tfds_dir: str = "") -> tuple[list[dict[str, Any]], str]:
    """``(rows as dicts, a name for messages)`` from any source kind, in the source's order."""
    kind = source_kind(source)
    if kind == "tfds":
        return read_tfds_rows(str(source), tfds_dir, split)
    if kind == "local":
        path = pathlib.Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data source not found: {path}")
        return read_row_source(path, split), str(path)
    import datasets

    ds = datasets.load_dataset(str(source), split=split or "train")
    return ds.to_list(), str(source)
