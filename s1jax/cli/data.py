"""``s1jax data prepare --config=configs/data/prepare.py [--config.FIELD=VALUE ...]``: build TFDS datasets.

Builds each of ``datasets`` (s1k, s1k_1_1, aime24, math500) from ``sources.<name>`` (a hub dataset or a local
.parquet/.jsonl/.json file) into ``data_dir`` (local or gs://) as array_record, with a progress bar, and prints a
summary: rows, bytes, SHA-256 of the rows and the ``tfds:NAME/VERSION`` source to put in a train or eval config.
A version that is already built is kept (and summarised) unless ``overwrite``. No TensorFlow is needed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence

import ml_collections

from s1jax import exit_codes
from s1jax.cli import app
from s1jax.config import ConfigError
from s1jax.data.sources import source_kind
from s1jax.data.tfds.prepare import format_summary, prepare_dataset
from s1jax.data.tfds.schemas import SCHEMAS

__all__ = ["COMMAND", "SUBCOMMANDS", "main", "validate", "dataset_names"]

COMMAND = app.Command(
    name="data",
    summary="build s1K and the eval sets as TFDS array_record datasets (`s1jax data prepare`)",
    doc=__doc__,
    default_config=app.config_path("data", "prepare.py"),
    shipped=("data/*.py",),
)
SUBCOMMANDS = {"prepare": "build TFDS datasets into a data dir"}


def dataset_names(cfg: ml_collections.ConfigDict) -> list[str]:
    value = cfg.datasets
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    if not names:
        raise ConfigError(f"--config.datasets is empty; choose from {sorted(SCHEMAS)} (comma-separated)")
    unknown = [n for n in names if n not in SCHEMAS]
    if unknown:
        raise ConfigError(f"--config.datasets: unknown {unknown}; choose from {sorted(SCHEMAS)} (comma-separated)")
    return list(dict.fromkeys(names))


def validate(cfg: ml_collections.ConfigDict) -> list[str]:
    """The datasets to build; raises ConfigError/FileNotFoundError (one line) before anything is read or written."""
    names = dataset_names(cfg)
    if importlib.util.find_spec("tensorflow_datasets") is None:
        raise ConfigError("s1jax data prepare needs the tfds extra: pip install -e '.[tfds]' (tensorflow-datasets, "
                          "array_record, importlib_resources; no TensorFlow)")
    if not cfg.data_dir:
        raise ConfigError("set --config.data_dir (a local directory or gs://bucket/path)")
    for name in names:
        source = cfg.sources.get(name) or SCHEMAS[name].default_source
        kind = source_kind(source)
        if kind == "tfds":
            raise ConfigError(f"--config.sources.{name}={source}: a TFDS source cannot be the input of a build")
        if kind == "local" and not os.path.exists(os.path.expanduser(source)):
            raise FileNotFoundError(f"--config.sources.{name}: {source!r} does not exist (a local .parquet/.jsonl/"
                                    ".json file or directory, or a hub dataset name)")
    return names


def _usage() -> str:
    lines = ["usage: s1jax data <subcommand> [--config=FILE] [--config.FIELD=VALUE ...]", "", "subcommands:"]
    lines += [f"  {name:<8} {desc}" for name, desc in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in app.HELP_FLAGS:
        print(_usage() + "\n\n" + app.help_text(COMMAND, argv))
        return exit_codes.OK
    if not argv or argv[0] not in SUBCOMMANDS:
        got = f"unknown subcommand {argv[0]!r}" if argv else "no subcommand"
        raise ConfigError(f"{got}; use `s1jax data prepare --config=configs/data/prepare.py` (s1jax data --help)")
    cfg = app.parse(COMMAND, argv[1:])
    if cfg is None:
        return exit_codes.OK
    names = validate(cfg)
    summaries = []
    for name in names:
        app.say(f"building {name} from {cfg.sources.get(name) or SCHEMAS[name].default_source} into {cfg.data_dir}")
        try:
            summaries.append(prepare_dataset(name, cfg.data_dir, source=cfg.sources.get(name) or None,
                                             overwrite=bool(cfg.overwrite), progress=bool(cfg.progress)))
        except ValueError as e:
            print(f"s1jax data prepare: {name}: {e}", file=sys.stderr)
            return exit_codes.USAGE
    app.say(format_summary(summaries))
    app.say(f"data dir: {cfg.data_dir}  (train: --config.data.source={summaries[0].tfds_source} "
            f"--config.data.tfds_dir={cfg.data_dir})")
    return exit_codes.OK


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
