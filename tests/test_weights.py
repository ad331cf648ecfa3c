"""Weight import/export errors, atomic export, the s1jax native format (incl. a trainer CheckpointManager root) and
the ``s1jax convert`` CLI."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from hf_fixtures import hf_logits, left_padded_batch, make_tiny_hf_dir

import s1jax  # noqa: E402
from s1jax.model.io import native as weights_native  # noqa: E402
from s1jax.sharding import make_mesh  # noqa: E402

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path, model = make_tiny_hf_dir(tmp_path_factory.mktemp("hf") / "qwen2", "qwen2", tied=False)
    (path / "tokenizer.json").write_text('{"stub": true}')  # copied along by convert / export
    return path, model


def _copy_hf(src, dst):
    dst.mkdir()
    for name in os.listdir(src):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _rewrite_tensors(directory, edit):
    from safetensors.numpy import load_file, save_file

    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def _leaves_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------------------------------------ bad input


def test_missing_checkpoint_dir(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        s1jax.load_model(str(missing))


def test_dir_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        s1jax.load_model(str(tmp_path))


def test_config_without_safetensors(tmp_path, hf_dir):
    (tmp_path / "config.json").write_bytes((hf_dir[0] / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        s1jax.load_model(str(tmp_path))


def test_missing_tensor(tmp_path, hf_dir):
    d = _copy_hf(hf_dir[0], tmp_path / "m")
    _rewrite_tensors(d, lambda t: t.pop("model.layers.1.self_attn.k_proj.bias"))
    with pytest.raises(ValueError, match=r"missing tensor.*model\.layers\.1\.self_attn\.k_proj\.bias"):
        s1jax.load_model(str(d), dtype="float32")


def test_missing_lm_head_of_untied_model(tmp_path, hf_dir):
    d = _copy_hf(hf_dir[0], tmp_path / "m")
    _rewrite_tensors(d, lambda t: t.pop("lm_head.weight"))
    with pytest.raises(ValueError, match="lm_head.weight"):
        s1jax.load_model(str(d), dtype="float32")


def test_wrong_shape_names_tensor_and_both_shapes(tmp_path, hf_dir):
    d = _copy_hf(hf_dir[0], tmp_path / "m")

    def edit(t):
        t["model.layers.0.mlp.up_proj.weight"] = t["model.layers.0.mlp.up_proj.weight"][:80]

    _rewrite_tensors(d, edit)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.up_proj\.weight.*\(80, 64\).*\(96, 64\)"):
        s1jax.load_model(str(d), dtype="float32")


def test_extra_layers_are_rejected(tmp_path, hf_dir):
    d = _copy_hf(hf_dir[0], tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_hidden_layers"] = 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"unexpected tensor.*model\.layers\.1\."):
        s1jax.load_model(str(d), dtype="float32")


def test_unknown_architecture(tmp_path, hf_dir):
    d = _copy_hf(hf_dir[0], tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(architectures=["GPT2LMHeadModel"], model_type="gpt2")
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        s1jax.load_model(str(d))


def test_not_a_checkpoint_file(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="not a GGUF"):
        s1jax.load_model(str(f))


def test_bad_export_format(tmp_path):
    model = s1jax.load_model(s1jax.ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16), dtype="float32")
    with pytest.raises(ValueError, match="unknown export format"):
        s1jax.save_model(model, str(tmp_path / "o"), format="onnx")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------ atomic export


def test_failing_export_leaves_nothing(tmp_path, hf_dir, monkeypatch):
    from s1jax import sharding

    model = s1jax.load_model(str(hf_dir[0]), dtype="float32")
    real = sharding.gather_pytree
    calls = {"n": 0}

    def flaky(tree):
        calls["n"] += 1
        if calls["n"] > 4:
            raise RuntimeError("disk on fire")
        return real(tree)

    monkeypatch.setattr(sharding, "gather_pytree", flaky)
    out = tmp_path / "export"
    with pytest.raises(RuntimeError, match="disk on fire"):
        s1jax.save_model(model, str(out), format="hf", max_shard_bytes=20_000)
    assert calls["n"] == 5
    assert os.listdir(tmp_path) == []  # neither the output nor the temporary directory


def test_export_refuses_non_empty_dir_unless_overwrite(tmp_path, hf_dir):
    model = s1jax.load_model(str(hf_dir[0]), dtype="float32")
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        s1jax.save_model(model, str(out), format="hf")
    assert os.listdir(out) == ["keep.txt"]
    s1jax.save_model(model, str(out), format="hf", overwrite=True, tokenizer_path=str(hf_dir[0]))
    assert sorted(os.listdir(out)) == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]
    assert sorted(os.listdir(tmp_path)) == ["export"]


# ------------------------------------------------------------------------------------------ native format


def test_native_round_trip_plain_and_sharded(tmp_path, hf_dir):
    model = s1jax.load_model(str(hf_dir[0]), dtype="float32")
    out = s1jax.save_model(model, str(tmp_path / "native"), format="s1jax")
    assert sorted(os.listdir(out)) == ["params", "s1jax_model.json"]
    meta = json.loads((tmp_path / "native" / "s1jax_model.json").read_text())
    assert meta["param_dtype"] == "float32" and meta["architecture"] == "qwen2" and meta["num_layers"] == 2

    again = s1jax.load_model(out, dtype="float32")
    assert again.config == model.config
    _leaves_equal(again.params, model.params)

    mesh = make_mesh(2, 2, 2)
    sharded = s1jax.load_model(out, dtype="float32", mesh=mesh)
    _leaves_equal(sharded.params, model.params)
    assert tuple(sharded.params["layers"]["self_attn"]["o_proj"]["kernel"].sharding.spec) == (None, "tensor", None, "fsdp")
    # save from the mesh, restore unsharded in bf16
    out2 = s1jax.save_model(sharded, str(tmp_path / "native2"), format="s1jax")
    bf16 = s1jax.load_model(out2, dtype="bfloat16")
    assert str(bf16.param_dtype) == "bfloat16"
    ids, mask = left_padded_batch([5, 9])
    ref = hf_logits(hf_dir[1], ids, mask)
    real = mask.astype(bool)
    assert np.abs(np.asarray(s1jax.forward(sharded, ids, mask))[real] - ref[real]).max() <= 1e-4


def test_native_from_trainer_checkpoint_manager(tmp_path, hf_dir):
    """The trainer's layout: s1jax_model.json in the manager root + numbered steps with a 'params' item."""
    import orbax.checkpoint as ocp

    model = s1jax.load_model(str(hf_dir[0]), dtype="float32")
    root = tmp_path / "ckpt"
    mngr = ocp.CheckpointManager(str(root), item_names=("params", "opt_state"))
    weights_native.write_model_json(str(root), model.config, model.param_dtype)
    old = jax.tree_util.tree_map(lambda x: x * 0, model.params)
    mngr.save(1, args=ocp.args.Composite(params=ocp.args.StandardSave(old), opt_state=ocp.args.StandardSave({"n": np.int32(1)})))
    mngr.save(2, args=ocp.args.Composite(params=ocp.args.StandardSave(model.params), opt_state=ocp.args.StandardSave({"n": np.int32(2)})))
    mngr.wait_until_finished()
    mngr.close()
    loaded = s1jax.load_model(str(root), dtype="float32", mesh=make_mesh(1, 4, 2))
    _leaves_equal(loaded.params, model.params)  # the latest step
    assert tuple(loaded.params["layers"]["mlp"]["up_proj"]["kernel"].sharding.spec) == (None, "fsdp", "tensor")


def test_native_errors(tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    (d / "s1jax_model.json").write_text(json.dumps({"architecture": "qwen2", "num_layerz": 3}))
    with pytest.raises(ValueError, match="num_layerz"):
        s1jax.load_model(str(d))
    (d / "s1jax_model.json").write_text(json.dumps({"architecture": "qwen2"}))
    with pytest.raises(FileNotFoundError, match="params"):
        s1jax.load_model(str(d))


# ------------------------------------------------------------------------------------------ convert CLI


def test_convert_cli_hf_to_s1jax_to_hf(tmp_path, hf_dir):
    from s1jax.cli import convert

    native, back = tmp_path / "native", tmp_path / "back"
    assert convert.main([f"--config.input={hf_dir[0]}", f"--config.output={native}", "--config.output_format=s1jax"]) == 0
    assert json.loads((native / "s1jax_model.json").read_text())["param_dtype"] == "float32"
    assert (native / "tokenizer.json").is_file()
    assert convert.main([f"--config.input={native}", f"--config.output={back}", "--config.dtype=bfloat16"]) == 0
    assert sorted(os.listdir(back)) == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]
    assert json.loads((back / "config.json").read_text())["torch_dtype"] == "bfloat16"
    # errors: missing input -> exit 2, nothing written
    assert convert.main([f"--config.input={tmp_path / 'nope'}", f"--config.output={tmp_path / 'x'}"]) == 2
    assert not (tmp_path / "x").exists()


def test_convert_cli_config_errors(tmp_path):
    from s1jax.cli import convert
    from s1jax.config import ConfigError

    with pytest.raises(ConfigError, match="input"):
        convert.main([])
    with pytest.raises(ConfigError, match="output_format"):
        convert.main(["--config.input=a", "--config.output=b", "--config.output_format=onnx"])
    with pytest.raises(ConfigError, match="dtype"):
        convert.main(["--config.input=a", "--config.output=b", "--config.dtype=int4"])
    from s1jax.cli.main import main as s1jax_main

    assert s1jax_main(["convert", "--config.outptu=b"]) == 2


def test_native_from_real_train_checkpointer(tmp_path, hf_dir):
    """Contract with s1jax.train.checkpoint: load_model(<root>) restores the latest step's params."""
    ckpt = pytest.importorskip("s1jax.train.checkpoint")
    model = s1jax.load_model(str(hf_dir[0]), dtype="float32")
    root = tmp_path / "run"
    saver = ckpt.TrainCheckpointer(str(root), save_every=1, keep=3, async_save=False)
    ckpt.write_model_json(str(root), model.config, model.param_dtype)
    halves = jax.tree_util.tree_map(lambda x: x * 0.5, model.params)
    opt = {"mu": jax.tree_util.tree_map(lambda x: x * 0, model.params)}
    saver.save(3, {"params": halves, "opt_state": opt}, {"step": 3})
    saver.save(7, {"params": model.params, "opt_state": opt}, {"step": 7})
    saver.close()
    loaded = s1jax.load_model(str(root), dtype="bfloat16")
    assert str(loaded.param_dtype) == "bfloat16"
    _leaves_equal(loaded.params, jax.tree_util.tree_map(lambda x: np.asarray(x).astype("bfloat16"), model.params))
