"""Build the TFDS datasets into a data dir and summarise what was written (rows, bytes, SHA-256 of the rows).

:func:`prepare_dataset` runs one builder's ``download_and_prepare`` (a progress bar over the rows), reads the split
back through ``tfds.data_source`` and returns a :class:`PrepareSummary`. The checksum is over the *content*: each
decoded row as canonical JSON (sorted keys), in record order (:func:`rows_sha256`). The array_record bytes are not
reproducible from build to build (serialized example maps have no fixed order), the rows are: the same source gives
the same checksum, and ``rows_sha256`` of the source rows normalised to the schema gives it too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from etils import epath

from s1jax.data.tfds.reader import check_built, import_tfds, open_data_source, quiet_tfds, read_records
from s1jax.data.tfds.schemas import schema_for

__all__ = ["PrepareSummary", "prepare_dataset", "rows_sha256", "format_summary"]


@dataclasses.dataclass(frozen=True)
class PrepareSummary:
    name: str
    version: str
    split: str
    source: str
    path: str  # <data_dir>/<name>/<version>
    rows: int
    bytes: int  # of the array_record shards
    sha256: str  # rows_sha256 of the rows read back, in record order
    shards: int
    reused: bool  # already built: nothing was written

    @property
    def tfds_source(self) -> str:
        return f"tfds:{self.name}/{self.version}"


def _shards(path: epath.Path, name: str, split: str) -> list[epath.Path]:
    return sorted(path.glob(f"{name}-{split}.array_record-*"))


def rows_sha256(rows: Iterable[Mapping[str, Any]]) -> str:
    """Hex SHA-256 over rows as canonical JSON lines (sorted keys, UTF-8), in order."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def prepare_dataset(name: str, data_dir: str, *, source: str | None = None, overwrite: bool = False,
                    progress: bool = True) -> PrepareSummary:
    """Build dataset ``name`` (``s1k`` | ``s1k_1_1`` | ``aime24`` | ``math500``) from ``source`` (default: the
    schema's hub name or shipped file) into ``data_dir``. An existing complete build of this version is kept unless
    ``overwrite``; a build from another schema is an error telling to overwrite."""
    schema = schema_for(name)
    root = epath.Path(data_dir).expanduser()
    target = root / name / schema.version
    reused = False
    if (target / "dataset_info.json").exists():
        if overwrite:
            target.rmtree()
        else:
            check_built(f"tfds:{name}/{schema.version}", str(root))  # same schema, or one line saying rebuild
            reused = True
    if not reused:
        tfds = import_tfds()
        # The builder classes subclass tensorflow_datasets' (the optional tfds extra): imported only to build, so
        # this module (and `s1jax data --help`) loads without it.
        from s1jax.data.tfds.builders import make_builder

        builder = make_builder(name, data_dir=str(root), source=source, progress=progress)
        tfds.disable_progress_bar()  # the builder shows one bar over the rows it writes instead of TFDS's three
        config = tfds.download.DownloadConfig()
        # TFDS prints "Downloading and preparing dataset ..." on stdout; the summary below says it better.
        with contextlib.redirect_stdout(io.StringIO()), quiet_tfds():
            builder.download_and_prepare(download_config=config)
    ds, built = open_data_source(f"tfds:{name}/{schema.version}", str(root))
    digest = rows_sha256(read_records(ds, range(len(ds))))
    shards = _shards(epath.Path(built.path), name, built.split)
    size = sum(shard.stat().length for shard in shards)
    info_source = source or schema.default_source
    if reused:
        info_source = _recorded_source(epath.Path(built.path)) or info_source
    return PrepareSummary(name, built.version, built.split, str(info_source), built.path, built.num_rows, size, digest,
                          len(shards), reused)


def _recorded_source(path: epath.Path) -> str | None:
    """The source a build was made from (the builder writes it to metadata.json)."""
    try:
        meta = json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("source") if isinstance(meta, dict) else None


def format_summary(summaries: list[PrepareSummary]) -> str:
    """A table: dataset, split, rows, bytes, sha256 (first 16 hex digits), source, and what to put in a config."""
    header = f"{'dataset':<22} {'split':<6} {'rows':>6} {'bytes':>11}  {'sha256':<16}  source"
    lines = [header, "-" * len(header)]
    for s in summaries:
        note = " (already built)" if s.reused else ""
        lines.append(f"{s.tfds_source:<22} {s.split:<6} {s.rows:>6} {s.bytes:>11,}  {s.sha256[:16]}  {s.source}{note}")
    return "\n".join(lines)
