"""``s1jax train --config=configs/train/FILE.py[:arg] [--config.x.y=v ...]``: SFT with the s1 recipe.

Initializes ``jax.distributed`` when the config/environment says so (multi-host), prints the resolved config,
the mesh and the step count, then runs (or resumes) the run. Exit codes: 0 done or stopped cleanly (SIGTERM /
stop_at_step, checkpoint saved), 1 training error (e.g. non-finite loss), 2 config/input error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from s1jax.config import ConfigError, format_config, parse_config_args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, rest = parse_config_args(argv, default_config=None)
    if rest:
        raise ConfigError(f"unexpected arguments {rest}; use --config.group.field=value")

    from s1jax.train import distributed

    distributed.initialize(cfg.get("distributed"))
    import jax

    from s1jax.train.sft import NonFiniteLossError, train

    is_main = jax.process_index() == 0
    log = print if is_main else (lambda *_: None)
    log("config:\n" + format_config(cfg))
    log(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind} ({jax.process_count()} processes)")
    try:
        result = train(cfg, log=log)
    except NonFiniteLossError as e:
        print(f"s1jax train: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as e:
        print(f"s1jax train: error: {e}", file=sys.stderr)
        return 2
    log(f"{result.stopped}: step {result.step}/{result.total_steps}; checkpoints in {result.checkpoint_dir}"
        + (f"; HF model in {result.hf_dir}" if result.hf_dir else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
