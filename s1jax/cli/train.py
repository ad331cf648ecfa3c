"""``s1jax train --config=configs/train/FILE.py[:ARG] [--config.GROUP.FIELD=VALUE ...]``: SFT with the s1 recipe.

Checks the config (fields, data source, model source, mesh against the devices), initializes ``jax.distributed``
when the config/environment says so (multi-host), prints the resolved config, the mesh and the step count, then
runs (or resumes) the run. The exit code tells a scheduler what happened (``s1jax.exit_codes``): 0 finished (or
stopped at train.stop_at_step), 2 config/input error (also a resume whose run fingerprint changed), 3 non-finite
loss, 74 storage failure (last good checkpoint intact), 75 preempted by SIGTERM with the checkpoint saved
(requeue), 130 Ctrl-C with the checkpoint saved, 1 anything else.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

import jax
import ml_collections
from absl import logging

from s1jax import exit_codes
from s1jax.cli import app
from s1jax.cli.checks import check_choice, check_dtype, check_int, check_model_source, check_number
from s1jax.config import ConfigError, format_config
from s1jax.data.files import ROW_FILE_SUFFIXES
from s1jax.data.sources import check_source, source_kind
from s1jax.train import distributed
from s1jax.train.errors import NonFiniteLossError, StorageError
from s1jax.train.sft import train

__all__ = ["COMMAND", "main", "validate", "check_mesh"]

COMMAND = app.Command(
    name="train",
    summary="SFT with the s1 recipe",
    doc=__doc__,
    fields_config=app.config_path("train", "base.py"),
    shipped=("train/*.py",),
)


def validate(cfg: ml_collections.ConfigDict) -> None:
    """The checks that need neither devices nor data: types, ranges, choices, paths. Raises ConfigError."""
    check_model_source(cfg.model)
    check_dtype(cfg.model.dtype, "model.dtype")
    if cfg.model.param_dtype:
        check_dtype(cfg.model.param_dtype, "model.param_dtype")
    check_choice(cfg.model.attention_impl, "model.attention_impl", ("", "xla", "cudnn", "chunked"))
    for axis in ("data", "fsdp", "tensor"):
        value = check_int(cfg.mesh[axis], f"mesh.{axis}")
        if value == 0 or value < -1:
            raise ConfigError(f"--config.mesh.{axis} must be a positive size or -1 (fill), got {value}")
    if sum(cfg.mesh[a] == -1 for a in ("data", "fsdp", "tensor")) > 1:
        raise ConfigError("at most one of mesh.data / mesh.fsdp / mesh.tensor may be -1")
    d = cfg.data
    source = str(d.source)
    looks_local = source.startswith((".", "/", "~")) or source.lower().endswith(ROW_FILE_SUFFIXES)
    if not source or (looks_local and not os.path.exists(os.path.expanduser(source))):
        raise ConfigError(f"--config.data.source: {source!r} does not exist (a local .parquet/.jsonl/.json file or "
                          "directory, a hub dataset name such as simplescaling/s1K, or tfds:s1k/1.0.0)")
    if source_kind(source) == "tfds":  # data dir, version and schema of the built dataset (small JSON files only)
        try:
            check_source(source, split=d.split, tfds_dir=d.get("tfds_dir", ""), field="data.source")
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(str(e).replace("the tfds_dir field", "--config.data.tfds_dir")) from None
    check_choice(d.trace, "data.trace", ("", "gemini", "deepseek"))
    check_choice(d.overlong, "data.overlong", ("truncate", "drop"))
    for field in ("block_size", "seq_len_multiple"):
        check_int(d[field], f"data.{field}", minimum=1)
    check_int(d.max_examples, "data.max_examples", minimum=0)
    t = cfg.train
    for field, minimum in (("epochs", 1), ("global_batch_size", 1), ("grad_accum", 1), ("max_steps", 0),
                           ("stop_at_step", 0), ("log_every", 1), ("save_every", 0), ("keep_checkpoints", 1),
                           ("loss_chunk", 0)):
        check_int(t[field], f"train.{field}", minimum)
    if t.global_batch_size % t.grad_accum:
        raise ConfigError(f"train.global_batch_size={t.global_batch_size} is not divisible by "
                          f"train.grad_accum={t.grad_accum}")
    check_number(t.lr, "train.lr", minimum=0.0)
    check_number(t.warmup_ratio, "train.warmup_ratio", minimum=0.0, maximum=1.0)
    check_number(t.weight_decay, "train.weight_decay", minimum=0.0)
    check_number(t.grad_clip, "train.grad_clip", minimum=0.0)
    check_choice(t.lr_schedule, "train.lr_schedule", ("cosine", "linear", "constant"))
    check_choice(t.remat, "train.remat", ("none", "full", "dots", "dots_no_batch"))
    check_choice(t.nan_policy, "train.nan_policy", ("stop", "skip", "none"))
    check_dtype(t.export_dtype, "train.export_dtype")
    check_choice(cfg.distributed.mode, "distributed.mode", ("auto", "on", "off"))


def check_mesh(cfg: ml_collections.ConfigDict, num_devices: int) -> None:
    """The mesh must cover exactly the devices, and the global batch split evenly over data x fsdp."""
    sizes = [cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor]
    known = math.prod(s for s in sizes if s != -1)
    if num_devices % known:
        raise ConfigError(f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} does not divide the "
                          f"{num_devices} devices; set --config.mesh.* so their product is {num_devices}")
    if -1 in sizes:
        sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise ConfigError(f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} needs {math.prod(sizes)} devices, "
                          f"but {num_devices} are available; set --config.mesh.* so their product is {num_devices}")

STOPPED_CODES = {
    "done": exit_codes.FINISHED,
    "stop_at_step": exit_codes.FINISHED,
    "sigterm": exit_codes.PREEMPTED,
    "sigint": exit_codes.INTERRUPTED,
}


def main(argv: Sequence[str] | None = None) -> int:
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return exit_codes.OK
    validate(cfg)

    distributed.initialize(cfg.get("distributed"))  # before the first use of a JAX backend
    check_mesh(cfg, jax.device_count())
    is_main = jax.process_index() == 0
    if not is_main:
        logging.set_verbosity(logging.ERROR)  # absl logs on process 0 only
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
    # anything else reaches cli.app.run: one line, exit 1 (the traceback with --verbosity=1)
    code = STOPPED_CODES.get(result.stopped, exit_codes.ERROR)
    log(f"{result.stopped}: step {result.step}/{result.total_steps}; checkpoints in {result.checkpoint_dir}"
        + (f"; HF model in {result.hf_dir}" if result.hf_dir else "")
        + (f" (exit {code}: {exit_codes.NAMES[code]})" if code else ""))
    return code


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
