"""``tfds:NAME/VERSION`` sources: check a built dataset, then read it with ``tfds.data_source`` (array_record random
access; no TensorFlow).

:func:`check_built` looks only at the small JSON files TFDS writes next to the records (``dataset_info.json``,
``features.json``), so a missing data dir, a version that was never built, a dataset written with another schema or
another file format each fail with one line *before* anything expensive (and before ``tensorflow_datasets`` is even
imported). :func:`open_data_source` returns the ``tfds.data_source`` sequence (``len``, ``ds[i]``,
``ds.__getitems__(indices)``: grain's RandomAccessDataSource protocol); :func:`read_records` decodes records to
plain Python rows (bytes -> str, numpy -> lists/ints), the same values the JSONL files hold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from absl import logging as absl_logging

from s1jax.data.tfds.schemas import SCHEMAS

if TYPE_CHECKING:
    from etils import epath

__all__ = ["TFDS_PREFIX", "TfdsSpec", "BuiltDataset", "is_tfds_source", "parse_tfds_source", "check_built",
           "open_data_source", "read_records", "read_tfds_rows", "import_tfds", "quiet_tfds", "PREPARE_HINT"]

TFDS_PREFIX = "tfds:"
PREPARE_HINT = "build it with `s1jax data prepare --config=configs/data/prepare.py --config.data_dir=DIR`"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def import_tfds() -> Any:
    """``tensorflow_datasets`` without its import-time chatter on stdout/stderr (it needs ``importlib_resources``,
    which it does not declare, and never TensorFlow for what s1jax does)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            f"TFDS sources need the tfds extra ({e}); install it with: pip install -e '.[tfds]'"
        ) from e
    return tfds


@contextlib.contextmanager
def quiet_tfds() -> Iterator[None]:
    """TFDS logs every step ("Load dataset info from ...") at absl INFO, the CLI's default level: keep those out of
    the terminal for the duration of a TFDS call, unless debug logging (``--verbosity=1``) was asked for."""
    before = absl_logging.get_verbosity()
    if before <= absl_logging.INFO:
        absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        yield
    finally:
        absl_logging.set_verbosity(before)


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """A parsed ``tfds:NAME[/VERSION]`` source (``tfds:NAME:VERSION`` is accepted too); version None = newest built."""

    name: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{TFDS_PREFIX}{self.name}" + (f"/{self.version}" if self.version else "")


@dataclasses.dataclass(frozen=True)
class BuiltDataset:
    """A dataset found on disk by :func:`check_built`."""

    spec: TfdsSpec
    version: str
    path: str  # <data_dir>/<name>/<version>
    data_dir: str
    split: str
    num_rows: int
    num_bytes: int
    splits: tuple[str, ...]


def is_tfds_source(source: Any) -> bool:
    return isinstance(source, str) and source.startswith(TFDS_PREFIX)


def parse_tfds_source(source: str) -> TfdsSpec:
    """``tfds:s1k/1.0.0`` -> TfdsSpec("s1k", "1.0.0"); a malformed one raises ValueError naming the form."""
    body = source[len(TFDS_PREFIX):] if is_tfds_source(source) else source
    name, sep, version = body.replace(":", "/", 1).partition("/")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or "") or (sep and not _VERSION.match(version)):
        raise ValueError(f"TFDS source {source!r} is not of the form tfds:NAME/MAJOR.MINOR.PATCH (e.g. tfds:s1k/1.0.0)")
    return TfdsSpec(name, version or None)


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def _read_json(path: epath.Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read ({e}); the dataset is damaged, {PREPARE_HINT}") from None


def features_signature(features_json: dict[str, Any]) -> dict[str, str]:
    """``{column: kind}`` of a TFDS ``features.json`` (kinds as in :mod:`s1jax.data.tfds.schemas`)."""
    top = features_json.get("featuresDict", {}).get("features", {})
    out: dict[str, str] = {}
    for name, feature in top.items():
        cls = str(feature.get("pythonClassName", "")).rsplit(".", 1)[-1]
        if cls == "Text":
            out[name] = "text"
        elif cls == "Sequence" and str(feature["sequence"]["feature"].get("pythonClassName", "")).endswith(".Text"):
            out[name] = "text_list"
        elif cls in ("Scalar", "Tensor") and not feature.get("tensor", {}).get("shape", {}).get("dimensions"):
            out[name] = str(feature["tensor"]["dtype"])
        else:
            out[name] = cls or "unknown"
    return out


def _schema_diff(expected: dict[str, str], found: dict[str, str]) -> str:
    parts = []
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    changed = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing:
        parts.append(f"missing columns {missing}")
    if extra:
        parts.append(f"unexpected columns {extra}")
    if changed:
        parts.append("changed " + ", ".join(f"{k} ({found[k]}, expected {expected[k]})" for k in changed))
    return "; ".join(parts)


def check_built(source: str | TfdsSpec, data_dir: str, split: str | None = None) -> BuiltDataset:
    """The built dataset ``source`` names under ``data_dir``, or one clear error: ``FileNotFoundError`` for a data
    dir / dataset / version that is not there, ``ValueError`` for another schema, file format or split."""
    from etils import epath  # local, gs:// (TFDS's path layer); imported when a TFDS source is used

    spec = source if isinstance(source, TfdsSpec) else parse_tfds_source(source)
    if not data_dir:
        raise ValueError(f"{spec}: no TFDS data dir given (set the tfds_dir field); {PREPARE_HINT}")
    root = epath.Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"TFDS data dir {data_dir!r} does not exist; {PREPARE_HINT}")
    dataset_dir = root / spec.name
    if not dataset_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("downloads", ".")))
        raise FileNotFoundError(f"{spec}: no dataset {spec.name!r} in TFDS data dir {data_dir!r} (found: {found}); "
                                f"{PREPARE_HINT}")
    built = sorted((p.name for p in dataset_dir.iterdir() if _VERSION.match(p.name) and (p / "dataset_info.json").exists()),
                   key=_version_key)
    if not built:
        raise FileNotFoundError(f"{spec}: {dataset_dir} holds no complete build (an interrupted prepare?); {PREPARE_HINT}")
    version = spec.version or built[-1]
    if version not in built:
        raise FileNotFoundError(f"{spec}: version {version} of {spec.name!r} is not built in {data_dir!r} "
                                f"(built: {built}); use tfds:{spec.name}/{built[-1]} or rebuild it")
    path = dataset_dir / version
    info = _read_json(path / "dataset_info.json")
    file_format = info.get("fileFormat", "tfrecord")
    if file_format != "array_record":
        raise ValueError(f"{spec}: {path} was written as {file_format}, but reading without TensorFlow needs "
                         f"array_record; rebuild it (s1jax data prepare writes array_record)")
    if spec.name in SCHEMAS:
        expected = SCHEMAS[spec.name].signature()
        found = features_signature(_read_json(path / "features.json"))
        if found != expected:
            raise ValueError(f"{spec}: {path} was built with another schema ({_schema_diff(expected, found)}); "
                             f"rebuild it with this s1jax: s1jax data prepare ... --config.overwrite=true")
    splits = {s["name"]: s for s in info.get("splits", [])}
    split = split or (SCHEMAS[spec.name].split if spec.name in SCHEMAS else next(iter(splits), "train"))
    if split not in splits:
        raise ValueError(f"{spec}: split {split!r} is not in {path} (splits: {sorted(splits)})")
    rows = sum(int(n) for n in splits[split].get("shardLengths", []))
    return BuiltDataset(spec, version, str(path), str(root), split, rows, int(splits[split].get("numBytes", 0)),
                        tuple(sorted(splits)))


def open_data_source(source: str | TfdsSpec, data_dir: str, split: str | None = None) -> tuple[Sequence[Any], BuiltDataset]:
    """``(tfds.data_source(...), what check_built found)``: checks first, then opens the array_record files."""
    built = check_built(source, data_dir, split)
    tfds = import_tfds()
    with quiet_tfds():
        ds = tfds.data_source(f"{built.spec.name}:{built.version}", split=built.split, data_dir=built.data_dir,
                              download=False)
    if len(ds) != built.num_rows:
        raise ValueError(f"{built.spec}: {built.path} has {len(ds)} records, dataset_info.json says {built.num_rows}; "
                         f"the build is damaged, {PREPARE_HINT}")
    return ds, built


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_records(ds: Sequence[Any], indices: Iterable[int], chunk: int = 1024) -> list[dict[str, Any]]:
    """Records ``indices`` of a data source as plain rows (``__getitems__`` in chunks: one batched array_record read
    each)."""
    indices = [int(i) for i in indices]
    get_many = getattr(ds, "__getitems__", None)
    out: list[dict[str, Any]] = []
    for start in range(0, len(indices), chunk):
        part = indices[start : start + chunk]
        records = get_many(part) if get_many else [ds[i] for i in part]
        out.extend(_plain(r) for r in records)
    return out


def read_tfds_rows(source: str, data_dir: str, split: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Every row of a built dataset, in record (= source) order, and a name for messages."""
    ds, built = open_data_source(source, data_dir, split)
    return read_records(ds, range(len(ds))), f"{built.spec.name}/{built.version} in {built.data_dir}"
