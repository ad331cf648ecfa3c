"""``s1jax train --config=configs/train/FILE.py[:arg] [--config.x.y=v ...]``: SFT with the s1 recipe.

Initializes ``jax.distributed`` when the config/environment says so (multi-host), prints the resolved config,
the mesh and the step count, then runs (or resumes) the run. The exit code tells a scheduler what happened
(``s1jax.exit_codes``): 0 finished (or stopped at train.stop_at_step), 2 config/input error (also a resume whose
run fingerprint changed), 3 non-finite loss, 74 storage failure (last good checkpoint intact), 75 preempted by
SIGTERM with the checkpoint saved (requeue), 130 Ctrl-C with the checkpoint saved, 1 anything else.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from s1jax import exit_codes
from s1jax.config import ConfigError, format_config, parse_config_args

STOPPED_CODES = {
    "done": exit_codes.FINISHED,
    "stop_at_step": exit_codes.FINISHED,
    "sigterm": exit_codes.PREEMPTED,
    "sigint": exit_codes.INTERRUPTED,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, rest = parse_config_args(argv, default_config=None)
    if rest:
        raise ConfigError(f"unexpected arguments {rest}; use --config.group.field=value")

    from s1jax.train import distributed

    distributed.initialize(cfg.get("distributed"))
    import jax

    from s1jax.train.errors import NonFiniteLossError, StorageError
    from s1jax.train.sft import train

    is_main = jax.process_index() == 0
    log = print if is_main else (lambda *_: None)
    log("config:\n" + format_config(cfg))
    log(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind} ({jax.process_count()} processes)")
    try:
        result = train(cfg, log=log)
    except NonFiniteLossError as e:
        print(f"s1jax train: {e}", file=sys.stderr)
        return exit_codes.NON_FINITE_LOSS
    except StorageError as e:
        print(f"s1jax train: storage failure: {e}", file=sys.stderr)
        return exit_codes.STORAGE_FAILURE
    except (ValueError, FileNotFoundError) as e:
        print(f"s1jax train: error: {e}", file=sys.stderr)
        return exit_codes.CONFIG_ERROR
    except Exception:  # noqa: BLE001 - reported with its traceback; the code says "not one of the above"
        traceback.print_exc()
        return exit_codes.ERROR
    code = STOPPED_CODES.get(result.stopped, exit_codes.ERROR)
    log(f"{result.stopped}: step {result.step}/{result.total_steps}; checkpoints in {result.checkpoint_dir}"
        + (f"; HF model in {result.hf_dir}" if result.hf_dir else "")
        + (f" (exit {code}: {exit_codes.NAMES[code]})" if code else ""))
    return code


if __name__ == "__main__":
    sys.exit(main())
