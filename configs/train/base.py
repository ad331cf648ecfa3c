"""Every training field with its default (the s1 recipe); the other ``configs/train/*.py`` start from this file.

Groups: ``model`` (s1jax.model.presets.model_group), ``mesh`` (data, fsdp, tensor; -1 = fill), ``data``,
``train``, ``distributed``. Every field is listed here, so a typo in ``--config.x.y=`` fails loudly.

    s1jax train --config=configs/train/base.py --config.model.path=DIR --config.data.source=FILE_OR_HUB_NAME
"""

from __future__ import annotations

import ml_collections

from s1jax.model.presets import model_group


def get_config() -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    # fp32 master weights, bf16 compute (s1: bf16 with fp32 master weights). param_dtype=bfloat16 -> pure bf16.
    cfg.model = model_group(preset="tiny", dtype="bfloat16", param_dtype="float32")
    cfg.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
    cfg.data = ml_collections.ConfigDict(
        dict(
            source="simplescaling/s1K",  # hub name, a local .parquet/.jsonl/.json file or directory, or tfds:s1k/1.0.0
            tfds_dir="",  # data dir of tfds: sources (local or gs://), as built by `s1jax data prepare`
            trace="",  # "" (deepseek if present, else s1K's gemini traces), "gemini", "deepseek"
            split="train",
            block_size=32768,  # s1: 32768; s1.1: 20000
            overlong="truncate",  # "truncate" (s1) | "drop"
            system=None,  # None = the chat family's system message; "" = none
            max_examples=0,  # 0 = all
            packing=False,  # s1: no packing
            drop_last=False,  # keep each epoch's last partial batch (zero-loss padding rows), as s1's HF Trainer
            pad_to_block=False,  # True: every batch is [.., block_size] (one compilation)
            seq_len_multiple=128,  # else pad each batch to its longest example rounded up to this
            seed=0,  # epoch shuffling
        )
    )
    cfg.train = ml_collections.ConfigDict(
        dict(
            output_dir="runs/s1",  # checkpoints under <output_dir>/checkpoints; may be gs://
            local_dir="",  # metrics + HF export; "" = output_dir (or runs/<name> when output_dir is remote)
            epochs=5,
            global_batch_size=16,
            grad_accum=1,  # micro-batches per step (lax.scan inside the step); global batch = accum x micro
            max_steps=0,  # > 0: cap the number of steps (and the schedule's length)
            stop_at_step=0,  # > 0: save and stop after this step without changing the schedule
            lr=1e-5,
            lr_schedule="cosine",  # cosine | linear | constant (after the warm-up)
            warmup_ratio=0.05,
            b1=0.9,
            b2=0.95,
            eps=1e-8,
            weight_decay=1e-4,
            decay_bias_and_norm=False,  # HF Trainer exempts biases (and norms) from weight decay
            grad_clip=1.0,  # global-norm clipping (HF Trainer default max_grad_norm, which s1 kept); 0 = off
            remat="full",  # none | full | dots | dots_no_batch
            loss_chunk=2048,  # cross-entropy over sequence chunks of this many positions; 0 = all at once
            nan_policy="stop",  # stop | skip (keep the previous state and go on) | none
            nan_skip_max_consecutive=5,  # nan_policy=skip: stop (exit 3) after more consecutive skipped steps; 0 = no limit
            nan_skip_max_total=20,  # nan_policy=skip: stop after more skipped steps in the whole run; 0 = no limit
            seed=0,
            log_every=1,
            save_every=100,  # checkpoint interval (steps); the final step is always saved
            keep_checkpoints=2,
            async_checkpoint=True,
            checkpoint_timeout_s=1200,  # an (async) checkpoint write not committed by then is a storage failure
            metrics_timeout_s=60.0,  # a metrics.jsonl / TensorBoard write stuck this long is a storage failure
            resume=True,
            resume_step=0,  # 0: the newest checkpoint that verifies (falls back past corrupted ones); N: exactly step N
            allow_config_change="",  # comma-separated fields that may differ from the checkpoint's run fingerprint
            tensorboard=True,
            progress_bar=True,
            peak_flops=0.0,  # per device, for MFU; 0 = from the device kind table
            export_hf=True,  # write <output_dir>/hf with s1jax.save_model(format="hf") at the end
            export_dtype="bfloat16",
        )
    )
    # accelerator the run is sized for (`s1jax compile` proves it fits): v5p-128, h100x16, ...; "" = none
    cfg.target = ""
    cfg.aot = ml_collections.ConfigDict(dict(mfu=0.4, dataset_rows=1000, max_batch=1024))  # s1jax compile settings
    cfg.distributed = ml_collections.ConfigDict(
        dict(
            mode="auto",  # auto | on | off
            coordinator_address="",
            num_processes=0,
            process_id=-1,
            local_device_ids="",
            initialization_timeout=300,
        )
    )
    return cfg
