"""s1jax compile (s1jax.aot): target names, validation before any compile, and real ahead-of-time compiles of a small
model's train step and decode loop for a TPU slice (libtpu) and an H100 node (the JAX CUDA plugin) on this CPU host.

The compile tests skip when the aot extra is not installed (``make aot``). The test model is small but aligned to
TPU tiles ((8, 128) for 32-bit, (16, 128) for 16-bit arrays), so the compiler's per-device bytes can be compared with
an exact count: shards of fp32 master weights + two AdamW moments (12 bytes per parameter).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pytest

from s1jax.aot.targets import TargetError, parse_target
from s1jax.aot.topology import backend_available

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_tpu = pytest.mark.skipif(not backend_available("tpu"), reason="libtpu not installed (make aot)")
needs_cuda = pytest.mark.skipif(not backend_available("cuda"), reason="JAX CUDA plugin not installed (make aot)")
KIB = 1024


# ---------------------------------------------------------------------------------------------------------- targets
@pytest.mark.parametrize("name, canonical, chips, topology", [
    ("v5p-128", "v5p-128", 64, (4, 4, 4)),
    ("tpu-v5p-128", "v5p-128", 64, (4, 4, 4)),
    ("v5p-8", "v5p-8", 4, (2, 2, 1)),
    ("v4-32", "v4-32", 16, (2, 2, 4)),
    ("v5e-16", "v5e-16", 16, (4, 4)),
    ("v5litepod-16", "v5e-16", 16, (4, 4)),
    ("v6e-256", "v6e-256", 256, (16, 16)),
    ("v6e-8", "v6e-8", 8, (2, 4)),
    ("v5p:4x4x4", "v5p-128", 64, (4, 4, 4)),
])
def test_tpu_target_names(name, canonical, chips, topology):
    t = parse_target(name)
    assert (t.name, t.num_devices, t.topology, t.platform) == (canonical, chips, topology, "tpu")
    assert t.topology_name == f"{t.chip.name}:{'x'.join(map(str, topology))}"


@pytest.mark.parametrize("name, canonical, devices, nodes", [
    ("h100x16", "h100x16", 16, 2), ("2x8xh100", "h100x16", 16, 2), ("gpu-h100x8", "h100x8", 8, 1),
    ("8xh100", "h100x8", 8, 1), ("h200x8", "h200x8", 8, 1), ("a100x1", "a100x1", 1, 1),
])
def test_gpu_target_names(name, canonical, devices, nodes):
    t = parse_target(name)
    assert (t.name, t.num_devices, t.nodes, t.platform) == (canonical, devices, nodes, "cuda")
    assert os.path.isfile(t.spec_path)


@needs_tpu
@pytest.mark.parametrize("name", ["v4-32", "v5e-16", "v5p-128", "v6e-8"])
def test_tpu_topologies_have_one_device_per_chip(name):
    from s1jax.aot.topology import compile_devices

    t = parse_target(name)
    assert len(compile_devices(t)) == t.num_devices  # v4 needs chip_config_name="megacore" for this


@needs_cuda
@pytest.mark.parametrize("name", ["h100x16", "h200x8", "a100x8"])
def test_gpu_spec_files_describe_their_chip(name):
    from s1jax.aot.topology import compile_devices

    t = parse_target(name)
    devices = compile_devices(t)
    assert len(devices) == t.num_devices and devices[0].device_kind.startswith(f"NVIDIA {t.chip.name.upper()}")


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(TargetError) as e:
        parse_target("tpu-v9-8")
    msg = str(e.value)
    assert "unknown target 'tpu-v9-8'" in msg and "v5p-128" in msg and "h100x16" in msg and "v6e-N" in msg


@pytest.mark.parametrize("name, words", [
    ("v5p:4x4", "malformed topology"), ("v5p:4xax4", "malformed topology"), ("v6e:2x2x2", "malformed topology"),
    ("v5p-12", "no TPU v5p slice with 6 chips"), ("h100x12", "whole nodes of 8"), ("2x4xh100", "nodes of 8"),
    ("", "no target given"),
])
def test_malformed_targets(name, words):
    with pytest.raises(TargetError, match=words):
        parse_target(name)


def _s1_32b(target="v5p-128"):
    from s1jax.config import load_config_file

    return load_config_file(os.path.join(REPO, f"configs/train/s1_32b.py:{target}"))


def test_mesh_must_match_the_chip_count():
    from s1jax.aot.compile import check_config

    cfg = _s1_32b()
    assert check_config(cfg)[2] == (1, 16, 4)
    cfg.mesh.tensor = 1  # 16 x 1 on 64 chips
    with pytest.raises(TargetError, match=r"mesh data=1 fsdp=16 tensor=1 has 16 devices but v5p-128 .* has 64"):
        check_config(cfg)
    cfg.mesh.fsdp, cfg.mesh.tensor = -1, 3
    with pytest.raises(TargetError, match="64 devices are not divisible by 3"):
        check_config(cfg)


def test_cli_config_errors_exit_2_before_compiling(capsys):
    from s1jax.cli.compile import main

    spec = f"--config={REPO}/configs/train/s1_32b.py:v5p-128"
    assert main([spec, "--config.target=v9-8"]) == 2
    assert "unknown target 'v9-8'" in capsys.readouterr().err
    assert main([spec, "--config.mesh.tensor=1"]) == 2
    assert "has 16 devices but v5p-128" in capsys.readouterr().err
    assert main([spec, "--config.train.grad_accum=3"]) == 2
    assert "not divisible by train.grad_accum=3" in capsys.readouterr().err
    gpu_spec = f"--config={REPO}/configs/train/s1_32b.py:h100x16"
    assert main([gpu_spec, "--config.target=v5p-128", "--config.mesh.fsdp=16", "--config.mesh.tensor=4"]) == 2
    assert "'cudnn' is an NVIDIA kernel and v5p-128 is a TPU" in capsys.readouterr().err


def test_every_scale_table_entry_is_a_valid_config_for_its_target():
    from s1jax.aot.compile import check_config
    from s1jax.aot.scale_table import ENTRIES
    from s1jax.config import load_config_file

    for _, spec, _ in ENTRIES:
        kind, target, _ = check_config(load_config_file(os.path.join(REPO, spec)))
        assert kind == ("train" if "/train/" in spec else "inference"), spec
        assert ":" not in spec or target.name == spec.split(":")[1], spec
    assert check_config(load_config_file(os.path.join(REPO, "configs/train/qwen2_5_0_5b.py")))[1].name == "h100x1"


def test_scale_table_renders_measured_and_missing_rows():
    from s1jax.aot import scale_table

    spec = "configs/aot/eval_32b.py:v6e-8"
    text = "target: v6e-8\nlargest batch that fits: 16 (tried 32 does not fit, 16 fits)"
    results = {spec: {"rows": ["| eval row |"], "text": text, "command": f"s1jax compile --config={spec}"}}
    md = scale_table._render(results, {"date": "d", "jax": "j", "libtpu": "l", "cuda_plugin": "c", "host": "h"})
    assert "| eval row |" in md and f"$ s1jax compile --config={spec}" in md
    assert "not compiled yet: `s1jax compile --config=configs/train/s1_32b.py:v5p-128`" in md
    assert f"`{spec}`: largest batch that fits: 16 (tried 32 does not fit, 16 fits)" in md


def test_preflight_stops_the_launch_when_compile_fails(tmp_path):
    fake = tmp_path / "s1jax"
    fake.write_text("#!/usr/bin/env bash\necho \"does not fit: $*\" >&2\nexit 1\n")
    fake.chmod(0o755)
    script = f"source {REPO}/launch/preflight.sh; preflight --config=x.py; echo launched"
    env = {**os.environ, "S1JAX_BIN": str(fake)}
    off = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert off.returncode == 0 and "launched" in off.stdout  # PREFLIGHT unset: no check
    on = subprocess.run(["bash", "-c", script], env={**env, "PREFLIGHT": "1"}, capture_output=True, text=True)
    assert on.returncode == 1 and "launched" not in on.stdout
    assert "does not fit: compile --config=x.py" in on.stderr and "stopped before launching" in on.stderr


# ---------------------------------------------------------------------------------------------- real compiles
def _model_dir(tmp_path_factory):
    """A 2-layer Qwen2-layout model whose shards are TPU-tile aligned (8 heads x 128, embed 512 / 4 = 128)."""
    from s1jax.model.config import ModelConfig

    config = ModelConfig(architecture="qwen2", vocab_size=2048, hidden_size=512, intermediate_size=1024, num_layers=2,
                         num_heads=8, num_kv_heads=8, head_dim=128, tie_word_embeddings=True)
    path = tmp_path_factory.mktemp("aot_model")
    (path / "config.json").write_text(json.dumps(config.to_hf_dict()))
    return str(path), config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _model_dir(tmp_path_factory)


def _train_cfg(path: str, target: str, **overrides):
    from s1jax.config import load_config_file

    cfg = load_config_file(str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "train" / "base.py"))
    cfg.model.path, cfg.model.preset, cfg.model.dtype, cfg.model.param_dtype = path, "", "bfloat16", "float32"
    cfg.mesh.update(dict(data=1, fsdp=-1, tensor=1))
    cfg.target = target
    cfg.data.block_size = 256
    cfg.train.global_batch_size, cfg.train.grad_accum = 4, 1
    cfg.train.remat, cfg.train.loss_chunk = "full", 128
    for key, value in overrides.items():
        group, field = key.split("__")
        cfg[group][field] = value
    return cfg


def _state_bytes_per_device(config, devices: int) -> int:
    """12 bytes per parameter (fp32 weights, mu, nu), split over ``devices`` by the embed axis (fsdp); q/k/v biases
    have no embed axis and stay whole on every device."""
    biases = config.num_layers * (config.num_heads + 2 * config.num_kv_heads) * config.head_dim
    return 12 * ((config.num_params - biases) // devices + biases)


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def tpu_train(model_dir):
    if not backend_available("tpu"):
        pytest.skip("libtpu not installed (make aot)")
    from s1jax.aot.compile import compile_for_target

    return compile_for_target(_train_cfg(model_dir[0], "v5p-8"), "tiny-aligned", log=_quiet)


@pytest.fixture(scope="module")
def gpu_train(model_dir):
    if not backend_available("cuda"):
        pytest.skip("JAX CUDA plugin not installed (make aot)")
    from s1jax.aot.compile import compile_for_target

    return compile_for_target(_train_cfg(model_dir[0], "h100x2"), "tiny-aligned", log=_quiet)


def _check_train(report, config, slack: int):
    (step,) = report.programs
    assert step.name == "train_step" and step.fits and not step.error
    devices = report.target.num_devices
    state = _state_bytes_per_device(config, devices)
    batch = 4 * (4 // devices) * 256 * 4  # four int32 [accum=1, micro, 256] arrays, micro split over fsdp
    expected = state + batch
    assert step.analytic_arg_bytes >= expected  # + the int32 step and AdamW counters
    assert 0 <= step.argument_bytes - expected <= slack, (step.argument_bytes, expected)
    assert step.argument_bytes <= step.peak_bytes <= step.available_bytes
    assert step.compile_s > 0 and step.step_s > 0 and step.calls == 250 * 5  # 1000 s1K rows / batch 4, 5 epochs


@needs_tpu
def test_tiny_train_step_compiles_for_tpu_and_bytes_match_params_plus_adam(tpu_train, model_dir):
    # TPU pads arrays to (8, 128) tiles: here only the [2, 128] norm-scale shards (x3 with the moments), the
    # [1, 1, 256] batch shards and the scalars are unaligned; each pads to at most one 8 x 256 x 4 B = 8 KiB tile
    # group, 16 arrays -> < 256 KiB, against 6 MB of state per chip
    _check_train(tpu_train, model_dir[1], slack=256 * KIB)
    assert tpu_train.target.name == "v5p-8" and tpu_train.mesh == {"data": 1, "fsdp": 4, "tensor": 1}


@needs_cuda
def test_tiny_train_step_compiles_for_h100_and_bytes_match_params_plus_adam(gpu_train, model_dir):
    # no tiling on GPUs: only the scalars (step, AdamW count) beyond the exact count, a few bytes each
    _check_train(gpu_train, model_dir[1], slack=1 * KIB)


@needs_tpu
def test_report_prints_bytes_headroom_and_predictions(tpu_train):
    from s1jax.aot.report import format_report, markdown_rows

    text = format_report(tpu_train)
    assert "train_step" in text and "headroom" in text and "GiB" in text and "1250 steps" in text
    assert "26 min on 16 H100" in text
    (row,) = markdown_rows(tpu_train, "tiny")
    assert row.startswith("| tiny | v5p-8 | 1, 4, 1 | train_step |")


def _inference(path: str, target: str, tensor: int, batch: int):
    from s1jax.aot.compile import compile_for_target
    from s1jax.aot.configs import inference_config

    cfg = inference_config(preset="", target=target, tensor=tensor, batch_size=batch, prompt_len=64,
                           max_cache_len=512)
    cfg.model.path = path
    return compile_for_target(cfg, "tiny-aligned", log=_quiet)


def _check_decode(report, config, tensor: int, rows: int, slack: int):
    refill, decode = report.programs
    assert refill.name == "refill" and decode.name == "decode" and refill.fits and decode.fits
    params = 2 * config.num_params  # bf16 weights; every matrix splits over tensor by heads / mlp / vocab
    biases_norms = 2 * (config.num_layers * 2 * config.hidden_size + config.hidden_size)  # replicated norm scales
    cache = 2 * config.num_layers * rows * 512 * config.num_kv_heads * config.head_dim * 2  # k + v, bf16
    expected = (params - biases_norms) // tensor + biases_norms + cache // tensor
    # the decode state also carries the valid mask, the output buffer and the per-row budget state (replicated)
    assert 0 <= decode.argument_bytes - expected <= slack, (decode.argument_bytes, expected)
    assert decode.alias_bytes > 0  # the state (cache included) is donated, as on an accelerator
    assert decode.calls == 512 - 64 and decode.timing == "memory"


@needs_tpu
def test_tiny_decode_loop_compiles_for_tpu_with_a_tensor_parallel_cache(model_dir):
    report = _inference(model_dir[0], "v5p-8", tensor=4, batch=8)
    _check_decode(report, model_dir[1], tensor=4, rows=8, slack=512 * KIB)


@needs_cuda
def test_tiny_decode_loop_compiles_for_h100(model_dir):
    report = _inference(model_dir[0], "h100x2", tensor=2, batch=8)
    _check_decode(report, model_dir[1], tensor=2, rows=8, slack=256 * KIB)


@needs_tpu
def test_oversized_config_does_not_fit_and_says_why(model_dir, capsys):
    from s1jax.cli.compile import run

    # no remat, whole-sequence cross-entropy and [heads, 65536, 65536] attention scores: far beyond 16 GiB
    cfg = _train_cfg(model_dir[0], "v5e-4", data__block_size=65536, train__remat="none", train__loss_chunk=0)
    assert run(cfg, "oversized") == 1
    err = capsys.readouterr().err
    assert "train_step (4 x 65536 tokens" in err and "does not fit v5e-4" in err
    # both byte counts come from the compiler's message: the need depends on XLA's schedule, the HBM on the chip
    needed = re.search(r"needs ([\d.]+) GiB per device", err)
    assert needed and float(needed.group(1)) > 15.75 * 10 and "15.75 GiB available" in err, err
    assert "train.remat" in err and "data.block_size (now 65536)" in err


@pytest.mark.slow
@pytest.mark.aot
@needs_tpu
def test_s1_32b_train_step_fits_v5p_128():
    """The real thing (about 90 s and 2 GB of host RAM): docs/scale.md records its output."""
    from s1jax.aot.compile import compile_for_target

    report = compile_for_target(_s1_32b("v5p-128"), "s1_32b.py:v5p-128", log=_quiet)
    (step,) = report.programs
    assert step.fits and step.peak_bytes < step.available_bytes
