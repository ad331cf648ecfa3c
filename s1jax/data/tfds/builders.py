"""TFDS ``GeneratorBasedBuilder`` classes for s1K, s1K-1.1, AIME24 and MATH500, written as ``array_record``.

One class per :class:`~s1jax.data.tfds.schemas.DatasetSchema`; importing this module registers them with TFDS
under the schema names (``s1k``, ``s1k_1_1``, ``aime24``, ``math500``). A builder reads its rows from ``source``
(a hub dataset name, or a local .parquet/.jsonl/.json file or directory; default: the schema's), keeps the schema's
columns and writes them in source order (``disable_shuffling``), so record ``i`` is source row ``i`` and a batch
order computed over the JSONL is the batch order over the TFDS dataset. Building needs no TensorFlow:

    builder = make_builder("s1k", data_dir="gs://bucket/tfds", source="simplescaling/s1K")
    builder.download_and_prepare()

The classes live in this importable module (TFDS records a builder's module; ``__main__`` would not do).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tqdm

from s1jax.data.sources import read_raw_rows
from s1jax.data.tfds.reader import import_tfds
from s1jax.data.tfds.schemas import SCHEMAS, Column, DatasetSchema, normalize_row

tfds = import_tfds()

__all__ = ["BUILDERS", "SchemaBuilder", "make_builder", "features_for"]

HOMEPAGE = "https://github.com/simplescaling/s1"


def _feature(column: Column) -> Any:
    if column.kind == "text":
        return tfds.features.Text(doc=column.doc or None)
    if column.kind == "text_list":
        return tfds.features.Sequence(tfds.features.Text(), doc=column.doc or None)
    return tfds.features.Scalar(dtype=np.dtype(column.kind), doc=column.doc or None)


def features_for(schema: DatasetSchema) -> Any:
    """The ``tfds.features.FeaturesDict`` of a schema."""
    return tfds.features.FeaturesDict({c.name: _feature(c) for c in schema.columns})


class SchemaBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """The shared builder; each registered subclass sets ``SCHEMA`` (and with it name, version, split, columns)."""

    SCHEMA: DatasetSchema

    def __init__(self, *, source: str | None = None, progress: bool = False, **kwargs: Any) -> None:
        self.source = source or self.SCHEMA.default_source
        self.progress = progress
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    def _info(self) -> Any:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.SCHEMA.description,
            features=features_for(self.SCHEMA),
            homepage=HOMEPAGE,
            disable_shuffling=True,  # record i = source row i: the same batch order as the source files
            metadata=tfds.core.MetadataDict(source=str(self.source)),
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[int, dict[str, Any]]]]:
        del dl_manager  # rows come from the hub (datasets' own cache) or a local file
        rows, where = read_raw_rows(self.source, self.SCHEMA.split)
        if not rows:
            raise ValueError(f"{where}: no rows to build TFDS dataset {self.SCHEMA.name!r} from")
        # Normalise every row before writing anything: a bad row fails the build with one line, not mid-way.
        examples = [normalize_row(self.SCHEMA, r, i, where) for i, r in enumerate(rows)]
        return {self.SCHEMA.split: self._generate_examples(examples)}

    def _generate_examples(self, examples: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
        bar = tqdm.tqdm(total=len(examples), desc=f"{self.SCHEMA.name}/{self.SCHEMA.version}", unit=" rows",
                        disable=not self.progress, leave=True)
        with bar:
            for key, example in enumerate(examples):
                yield key, example
                bar.update(1)


def _builder_class(schema: DatasetSchema) -> type[SchemaBuilder]:
    class_name = "".join(p.capitalize() for p in schema.name.split("_")) + "Builder"
    attrs = {
        "__module__": __name__,
        "__doc__": f"TFDS builder for {schema.name}: {schema.description}",
        "name": schema.name,
        "SCHEMA": schema,
        "VERSION": tfds.core.Version(schema.version),
        "RELEASE_NOTES": {schema.version: schema.release_notes},
    }
    return type(class_name, (SchemaBuilder,), attrs)


# name -> registered builder class (tfds.builder(name) and tfds.data_source(name) find them once this is imported)
BUILDERS: dict[str, type[SchemaBuilder]] = {name: _builder_class(schema) for name, schema in SCHEMAS.items()}
globals().update({cls.__name__: cls for cls in BUILDERS.values()})  # S1kBuilder, S1k11Builder, ... importable by name


def make_builder(name: str, *, data_dir: str, source: str | None = None, progress: bool = False) -> SchemaBuilder:
    """The builder of dataset ``name`` writing under ``data_dir`` (local or ``gs://``) from ``source``; ``progress``
    shows a bar over the rows written."""
    if name not in BUILDERS:
        raise ValueError(f"unknown TFDS dataset {name!r}; s1jax builds {sorted(BUILDERS)}")
    return BUILDERS[name](data_dir=data_dir, source=source, progress=progress)
