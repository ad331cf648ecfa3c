"""``s1jax curate --config=configs/curate/s1k.py [--config.FIELD=VALUE ...]``: build an s1K-style question set.

Parses the config, runs decontamination -> quality -> difficulty -> diversity (s1jax.curation), writes the selection
(parquet + JSONL), stage_report.json, drops.jsonl and domains.png to ``output.dir`` and prints the stage report, so
the paper's 59,029 -> ... -> 1,000 funnel is visible for every run. The output directory is written only after every
stage succeeded.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import ml_collections

from s1jax import exit_codes
from s1jax.cli import app
from s1jax.cli.checks import check_int
from s1jax.config import ConfigError, format_config
from s1jax.curation.io import curate_from_config, format_report

__all__ = ["COMMAND", "main", "validate"]

COMMAND = app.Command(
    name="curate",
    summary="s1K curation: quality -> difficulty -> diversity",
    doc=__doc__,
    fields_config=app.config_path("curate", "s1k.py"),
    shipped=("curate/*.py",),
)


def validate(cfg: ml_collections.ConfigDict) -> None:
    if not cfg.pool.source:
        raise ConfigError("set --config.pool.source (a local .parquet/.jsonl file or directory, a hub dataset name, "
                          "or 'synthetic')")
    check_int(cfg.diversity.num_select, "diversity.num_select", minimum=1)
    check_int(cfg.pool.limit, "pool.limit", minimum=0)
    if not cfg.output.dir:
        raise ConfigError("set --config.output.dir (where the selection and reports go)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the configured curation; 0 on success, 2 for a bad config or an unusable pool."""
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return exit_codes.OK
    validate(cfg)
    app.say(format_config(cfg))
    try:
        result, paths = curate_from_config(cfg)
    except ValueError as e:
        print(f"s1jax curate: {e}", file=sys.stderr)
        return exit_codes.USAGE
    app.say(format_report(result))
    for kind, path in paths.items():
        app.say(f"wrote {kind}: {path}")
    return exit_codes.OK


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
