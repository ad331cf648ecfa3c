"""``s1jax curate --config=configs/curate/s1k.py``: build an s1K-style 1,000-question set from a pool.

Parses the config, runs decontamination -> quality -> difficulty -> diversity (s1jax.data.curation), writes the
selection (parquet + JSONL), stage_report.json, drops.jsonl and domains.png to ``output.dir`` and prints the stage
report, so the paper's 59,029 -> ... -> 1,000 funnel is visible for every run.
"""

from __future__ import annotations

import sys

from s1jax.config import format_config, parse_config_args


def main(argv: list[str]) -> int:
    """Run the configured curation; 0 on success, 2 for unknown arguments or an unusable pool/config."""
    cfg, rest = parse_config_args(argv)
    if rest:
        print(f"s1jax curate: unexpected arguments {rest}", file=sys.stderr)
        return 2
    from s1jax.data.curation_io import curate_from_config, format_report

    print(format_config(cfg))
    try:
        result, paths = curate_from_config(cfg)
    except ValueError as e:
        print(f"s1jax curate: {e}", file=sys.stderr)
        return 2
    print(format_report(result))
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
