"""The sharded engine (``s1jax.inference.mesh``) on the 8 fake CPU devices: greedy tokens identical to the unsharded
engine (itself token-exact with the reference loop, test_engine_continuous) with continuous batching, mixed budgets
and the budget sweep, on a (data=2, tensor=2) and a (data=1, fsdp=2, tensor=4) mesh; parameters and KV cache carry
the intended shardings (KV heads split on tensor 2; on tensor 4 > the tiny model's 2 KV heads each is repeated
twice, one per chip); a bad
mesh fails with its numbers before anything is compiled or loaded.

Cost: compiling the engine's programs for each mesh is most of it, so each mesh runs one workload in the default
suite (mixed budgets on data2 x tensor2, the sweep on fsdp2 x tensor4; the sweep on data2 x tensor2 is also run
across two processes by test_inference_multihost); the full cross product is ``slow``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import s1jax
from gen_fixtures import model_fixture, QUESTIONS, tok_fixture, tokenizer_dir  # noqa: F401 - model_fixture, tok_fixture: the "model", "tok" fixtures
from s1jax.config import ConfigError
from s1jax.inference import scheduler
from s1jax.inference.generate import generate_with_stats
from s1jax.inference.mesh import check_mesh, per_device_bytes, prepare
from s1jax.sharding import make_mesh
from test_engine_continuous import MIXED

SWEEP_BUDGETS = [0, 6, 28]  # test_engine_continuous.test_sweep_on_continuous_batching: same unsharded programs
SWEEP_BASE = s1jax.Budget(num_ignore=1, max_answer_tokens=7)


def mesh_of(data: int, fsdp: int, tensor: int):
    return make_mesh(data, fsdp, tensor, devices=jax.devices()[: data * fsdp * tensor])


@pytest.fixture(scope="module")
def unsharded_mixed(model, tok):
    return s1jax.generate(model, tok, QUESTIONS, budget=MIXED, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def unsharded_sweep(model, tok):
    return s1jax.generate_budget_sweep(model, tok, QUESTIONS, SWEEP_BUDGETS, budget=SWEEP_BASE, batch_size=2,
                                       progress=False)


def _same(sharding, mesh, spec: P, ndim: int) -> bool:
    return sharding.is_equivalent_to(NamedSharding(mesh, spec), ndim)


@pytest.fixture
def decoded(monkeypatch):
    """What the engine's decode program received and returned during the next runs (params and the state's
    shardings), spied on the real scheduler loop: no extra compilation."""
    seen: list[dict] = []
    real_run = scheduler.run

    def run(model, engine, *args, **kwargs):
        decode = engine.decode

        def spy(params, state, *rest):
            out = decode(params, state, *rest)
            seen.append({"params": params, "in": state.cache.k.sharding, "k": out.cache.k.sharding,
                         "v": out.cache.v.sharding, "shape": out.cache.k.shape,
                         "replicated": [x.sharding.is_fully_replicated for x in (
                             out.cache.valid, out.cache.index, out.out, out.rows.phase, out.rows.key)]})
            return out

        engine.decode = spy
        try:
            return real_run(model, engine, *args, **kwargs)
        finally:
            engine.decode = decode

    monkeypatch.setattr(scheduler, "run", run)
    return seen


def _check_shardings(seen, mesh, kv_spec):
    """Parameters in their inference shardings (TP over heads / MLP / vocab, nothing over embed), and the decode
    state's KV cache (rows over data x fsdp, KV heads as ``kv_spec``) in and out of the compiled program, the rest
    of the state replicated."""
    assert seen
    params = seen[0]["params"]
    attn, mlp = params["layers"]["self_attn"], params["layers"]["mlp"]
    assert _same(attn["q_proj"]["kernel"].sharding, mesh, P(None, None, "tensor", None), 4)
    assert _same(attn["o_proj"]["kernel"].sharding, mesh, P(None, "tensor", None, None), 4)
    assert _same(attn["k_proj"]["kernel"].sharding, mesh, P(None, None, kv_spec, None), 4)
    assert _same(mlp["gate_proj"]["kernel"].sharding, mesh, P(None, None, "tensor"), 3)
    assert _same(mlp["down_proj"]["kernel"].sharding, mesh, P(None, "tensor", None), 3)
    assert _same(params["lm_head"]["kernel"].sharding, mesh, P(None, "tensor"), 2)
    assert _same(params["embed_tokens"]["embedding"].sharding, mesh, P("tensor", None), 2)
    rows = tuple(a for a in ("data", "fsdp") if mesh.shape[a] > 1)
    cache = P(None, rows[0] if len(rows) == 1 else rows, None, kv_spec, None)
    for call in seen:
        for key in ("in", "k", "v"):
            assert _same(call[key], mesh, cache, 5), (key, call[key])
        assert all(call["replicated"])


def test_data2_tensor2_mixed_budgets_match_unsharded(model, tok, unsharded_mixed, decoded):
    mesh = mesh_of(2, 1, 2)
    results, stats = generate_with_stats(model, tok, QUESTIONS, budget=MIXED, batch_size=2, progress=False,
                                         mesh=mesh)
    assert stats.slots == 2 and stats.refills >= 4  # continuous batching: rows refilled while others decode
    assert [r.to_dict() for r in results] == [r.to_dict() for r in unsharded_mixed]
    _check_shardings(decoded, mesh, kv_spec="tensor")  # 2 KV heads over tensor 2
    placed, _ = prepare(model, mesh)
    assert prepare(placed, mesh)[0].params is placed.params  # prepared once: no copy on the next call


def test_fsdp2_tensor4_sweep_matches_unsharded(model, tok, unsharded_sweep, decoded):
    mesh = mesh_of(1, 2, 4)
    sweep = s1jax.generate_budget_sweep(model, tok, QUESTIONS, SWEEP_BUDGETS, budget=SWEEP_BASE, batch_size=2,
                                        progress=False, mesh=mesh)
    for b in SWEEP_BUDGETS:
        assert [r.to_dict() for r in sweep[b]] == [r.to_dict() for r in unsharded_sweep[b]], b
    _check_shardings(decoded, mesh, kv_spec="tensor")  # 2 KV heads, each repeated twice: one per chip
    assert decoded[0]["shape"][3] == 4 and decoded[0]["params"]["layers"]["self_attn"]["k_proj"]["kernel"].shape[2] == 4


@pytest.mark.slow
@pytest.mark.parametrize("sizes", [(2, 1, 2), (1, 2, 4)])
def test_every_workload_on_every_mesh(model, tok, unsharded_mixed, unsharded_sweep, decoded, sizes):
    mesh = mesh_of(*sizes)
    mixed = s1jax.generate(model, tok, QUESTIONS, budget=MIXED, batch_size=2, progress=False, mesh=mesh)
    assert [r.to_dict() for r in mixed] == [r.to_dict() for r in unsharded_mixed]
    sweep = s1jax.generate_budget_sweep(model, tok, QUESTIONS, SWEEP_BUDGETS, budget=SWEEP_BASE, batch_size=2,
                                        progress=False, mesh=mesh)
    for b in SWEEP_BUDGETS:
        assert [r.to_dict() for r in sweep[b]] == [r.to_dict() for r in unsharded_sweep[b]], b
    _check_shardings(decoded, mesh, kv_spec="tensor")


# ----------------------------------------------------------------------------------------------- bad input


def test_bad_mesh_names_the_numbers():
    from s1jax.model.presets import preset_config

    c = preset_config("tiny")  # 4 heads, 2 KV heads, MLP 128
    with pytest.raises(ValueError, match=r"mesh.tensor=3 does not divide the model's 4 attention heads.*1, 2, 4"):
        check_mesh(c, 1, 1, 3, devices=3)
    with pytest.raises(ValueError, match=r"needs 16 devices, but only 8 are available"):
        check_mesh(c, 4, 1, 4, devices=8)
    with pytest.raises(ValueError, match=r"other axes \(3\) do not divide the 8 devices"):
        check_mesh(c, -1, 1, 3, devices=8)
    with pytest.raises(ValueError, match=r"at most one -1"):
        check_mesh(c, -1, -1, 1, devices=8)
    odd_kv = dataclasses.replace(c, num_heads=12, num_kv_heads=4, head_dim=8, intermediate_size=96)
    with pytest.raises(ValueError, match=r"mesh.tensor=6 and the model's 4 KV heads"):
        check_mesh(odd_kv, 1, 1, 6, devices=6)
    with pytest.raises(ValueError, match=r"mesh.tensor=4 does not divide the model's MLP width 90"):
        check_mesh(dataclasses.replace(odd_kv, intermediate_size=90), 1, 1, 4, devices=4)
    assert check_mesh(c, -1, 1, 4, devices=8) == (2, 1, 4)


def test_cli_rejects_a_bad_mesh_before_loading(tmp_path, monkeypatch):
    from s1jax.cli import generate as cli
    from s1jax.model import api

    def no_load(*_a, **_k):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(cli, "load_model_from_group", no_load)
    base = ["--config=configs/generate/default.py", "--config.prompt=hi", f"--config.output={tmp_path}/o.jsonl",
            f"--config.model.tokenizer={tokenizer_dir()}"]
    with pytest.raises(ConfigError, match=r"mesh.tensor=3 does not divide the model's 4 attention heads"):
        cli.main(base + ["--config.mesh.tensor=3"])
    with pytest.raises(ConfigError, match=r"needs 16 devices, but only 8 are available"):
        cli.main(base + ["--config.mesh.data=4", "--config.mesh.tensor=4"])
    assert api is not None and not (tmp_path / "o.jsonl").exists()


def test_per_device_memory_model():
    """The analytic per-device bytes behind the 32B configs: Qwen2.5-32B in bf16, 32768-slot rows."""
    from s1jax.model.presets import preset_config

    c = preset_config("qwen2_5_32b")
    one = per_device_bytes(c, 1, 1, 1, slots=1, max_len=32768, itemsize=2)
    assert one["cache"] == 2 * c.num_layers * 32768 * c.num_kv_heads * c.head_dim * 2 == 8 * 2**30  # 256 KiB/token
    assert math.isclose(one["params"], 2 * c.num_params, rel_tol=1e-4)  # all but biases and norms
    tp8 = per_device_bytes(c, 1, 1, 8, slots=16, max_len=32768, itemsize=2)
    assert tp8["cache"] == 16 * one["cache"] // 8  # 8 KV heads over tensor 8
    tp16 = per_device_bytes(c, 1, 1, 16, slots=16, max_len=32768, itemsize=2)
    assert tp16["cache"] == tp8["cache"]  # tensor 16 > 8 KV heads: each repeated twice, one head per chip
    assert math.isclose(tp8["params"] * 8, one["params"], rel_tol=1e-3)


@pytest.mark.parametrize("target", ["v5p-8", "v6e-8", "h100x8"])
def test_32b_eval_configs_fit_their_targets(target):
    """configs/eval/s1_32b.py: the mesh covers the target's chips and suits Qwen2.5-32B, and weights + every row's
    32768-slot cache fit one chip's usable HBM by the analytic model (the compiler check: make aot)."""
    from s1jax.aot.targets import parse_target
    from s1jax.config import load_config_file
    from s1jax.model.presets import preset_config

    cfg = load_config_file(f"configs/eval/s1_1_32b.py:{target}")
    c = preset_config(cfg.model.preset)
    chip = parse_target(target)
    m = cfg.mesh
    assert check_mesh(c, m.data, m.fsdp, m.tensor, devices=chip.num_devices) == (m.data, m.fsdp, m.tensor)
    need = per_device_bytes(c, m.data, m.fsdp, m.tensor, cfg.batch_size, cfg.max_cache_len, itemsize=2)
    assert need["params"] + need["cache"] < chip.chip.usable_bytes
    assert cfg.max_cache_len == 32768 and cfg.budget.uncapped_thinking_tokens < 32768
