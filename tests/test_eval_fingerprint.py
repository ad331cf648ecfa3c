"""Runs that cannot mix: eval output directories are fingerprinted, a different run stops `s1jax eval` before the
model loads, more budgets / a larger limit extend a run, and the report counts exactly the current settings'
records. Pure Python: the engine and the model loader are replaced (the real engine's resume is covered by
tests/test_eval_e2e.py)."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import pytest

import s1jax
from s1jax.eval import fingerprint as fpr
from s1jax.eval.benchmarks import load_benchmark
from s1jax.eval.report import ResultsWriter, load_records
from s1jax.eval.selection import planned_keys, select_records
from test_eval_runner import NATURAL, FakeSweep, _fake_generate

CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "eval" / "aime24.py"


@dataclasses.dataclass(frozen=True)
class Budget:
    max_thinking_tokens: int
    num_ignore: int
    ignore_str: str
    max_answer_tokens: int


@dataclasses.dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    top_k: int
    seed: int


def _model_dir(root: pathlib.Path, name: str, weights: bytes) -> pathlib.Path:
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 8}))
    (d / "model.safetensors").write_bytes(weights)
    (d / "tokenizer.json").write_text('{"version": "1.0"}')
    return d


@pytest.fixture()
def env(monkeypatch, tmp_path, shared_data_dir):
    """The eval CLI with a fake engine; ``env.loads`` counts model loads, ``env.fake`` the generate calls."""
    items = load_benchmark("aime24", str(shared_data_dir / "aime24.jsonl"))
    state = dataclasses.make_dataclass("Env", ["fake", "loads", "model_a", "model_b", "out"])(
        FakeSweep(items), [], _model_dir(tmp_path, "model_a", b"A" * 64), _model_dir(tmp_path, "model_b", b"B" * 64),
        tmp_path / "run")
    monkeypatch.setitem(vars(s1jax), "load_model", lambda path, **kw: state.loads.append(path) or "model")
    monkeypatch.setitem(vars(s1jax), "load_tokenizer", lambda path, **kw: "tok")
    monkeypatch.setitem(vars(s1jax), "Budget", Budget)
    monkeypatch.setitem(vars(s1jax), "Sampling", Sampling)
    monkeypatch.setitem(vars(s1jax), "generate_sweep",
                        lambda m, t, qs, levels, budget, sampling, **kw: state.fake.by_level(qs, levels))
    return state


def _argv(env, **extra):
    args = {"model.path": env.model_a, "limit": 3, "output_dir": env.out, "budgets": "[512, 2048]",
            "progress": "false", "bootstrap_samples": 200}
    args.update(extra)
    return [f"--config={CONFIG}"] + [f"--config.{k}={v}" for k, v in args.items()]


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _points(out):
    (m,) = _summary(out)["methods"]
    return [(p["point"], p["n"]) for p in m["points"]]


def test_resume_refuse_extend_shrink_and_overwrite(env, capsys):
    from s1jax.cli import eval as cli
    from s1jax.cli.main import main

    assert cli.main(_argv(env)) == 0 and env.fake.calls == 1 and len(env.loads) == 1
    assert _points(env.out) == [("max=512", 3), ("max=2048", 3)]
    fp = json.loads((env.out / "fingerprint.json").read_text())
    run = json.loads((env.out / "run_config.json").read_text())
    assert run["config"]["output_dir"] == str(env.out) and run["versions"]["s1jax"] == s1jax.__version__
    assert run["fingerprint_digest"] == fpr.fingerprint_digest(fp)
    recs = load_records(str(env.out / "results.jsonl"))
    assert {r["fingerprint"] for r in recs} == {fpr.fingerprint_digest(fp)[:16]}

    # same settings (another batch size: not part of a generation) -> resumed, nothing generated
    assert cli.main(_argv(env, batch_size=2)) == 0 and env.fake.calls == 1

    # a different model / system prompt / sampling each stop before the model loads, naming the difference
    loads = len(env.loads)
    for extra, needle in (({"model.path": env.model_b}, "model.digest"), ({"system": "Be brief."}, "settings.system"),
                          ({"sampling.temperature": 0.7}, "settings.sampling.temperature"),
                          ({"budget.max_answer_tokens": 64}, "settings.budget.max_answer_tokens")):
        capsys.readouterr()
        rc = main(["eval"] + _argv(env, **extra))
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert needle in err[0] and "overwrite" in err[0] and "output_dir" in err[0], err[0]
    assert len(env.loads) == loads and env.fake.calls == 1
    assert len(load_records(str(env.out / "results.jsonl"))) == 6

    # more budgets and a larger limit extend the run; only the new generations are recorded
    assert cli.main(_argv(env, limit=4, budgets="[512, 1024, 2048]")) == 0
    assert _points(env.out) == [("max=512", 4), ("max=1024", 4), ("max=2048", 4)]
    assert len(load_records(str(env.out / "results.jsonl"))) == 12

    # fewer: the report counts exactly the current settings' records, the lm-eval files too
    assert cli.main(_argv(env, limit=2, budgets="(512,)")) == 0
    assert _points(env.out) == [("max=512", 2)] and _summary(env.out)["num_records"] == 2
    (res,) = env.out.glob("results_*.json")
    lm = json.loads(res.read_text())
    assert list(lm["results"]) == ["aime24_budget_forcing_max512"]
    assert lm["n-samples"]["aime24_budget_forcing_max512"] == {"original": 30, "effective": 2}
    assert len(list(env.out.glob("samples_*.jsonl"))) == 1

    # overwrite replaces a different run
    calls = env.fake.calls
    assert cli.main(_argv(env, system="Be brief.", overwrite="true")) == 0
    assert env.fake.calls == calls + 1  # the 3 items again, in one batch
    assert len(load_records(str(env.out / "results.jsonl"))) == 6
    assert json.loads((env.out / "fingerprint.json").read_text())["settings"]["system"] == "Be brief."


def test_default_output_dir_is_per_model_and_settings(env, monkeypatch, tmp_path):
    from s1jax.cli import eval as cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(_argv(env, output_dir="")) == 0
    assert cli.main(_argv(env, output_dir="", **{"model.path": env.model_b})) == 0
    assert cli.main(_argv(env, output_dir="", budgets="[512, 1024, 2048]")) == 0  # extends model_a's directory
    dirs = sorted(p.name for p in (tmp_path / "runs" / "eval" / "aime24").iterdir())
    assert len(dirs) == 2 and dirs[0].startswith("model_a-") and dirs[1].startswith("model_b-"), dirs
    assert len(load_records(str(tmp_path / "runs" / "eval" / "aime24" / dirs[0] / "results.jsonl"))) == 9


def test_fingerprint_pieces(tmp_path):
    a = _model_dir(tmp_path, "a", b"x" * 10)
    copy = _model_dir(tmp_path, "copy", b"x" * 10)
    assert fpr.model_identity(str(a)) == {**fpr.model_identity(str(copy))}  # a copy (other path) is the same model
    (copy / "model.safetensors").write_bytes(b"x" * 9 + b"y")
    assert fpr.model_identity(str(a))["digest"] != fpr.model_identity(str(copy))["digest"]
    assert fpr.model_identity("Qwen/Qwen2.5-0.5B@abc") == {"kind": "hub", "id": "Qwen/Qwen2.5-0.5B@abc"}
    (a / "tokenizer.json").write_text('{"version": "2.0"}')  # a tokenizer change is the tokenizer's, not the weights'
    assert fpr.model_identity(str(a))["digest"] == fpr.model_identity(str(tmp_path / "a"))["digest"]
    big = tmp_path / "big.gguf"
    big.write_bytes(b"\0" * (fpr.HEAD_BYTES + 2 * fpr.TAIL_BYTES))
    before = fpr.file_digest(str(big))
    with open(big, "r+b") as f:  # a change in the tail (tensor bytes) changes the digest
        f.seek(fpr.HEAD_BYTES + 2 * fpr.TAIL_BYTES - 5)
        f.write(b"1")
    assert fpr.file_digest(str(big)) != before
    diffs = fpr.diff_fingerprints({"settings": {"system": "", "seed": 0}}, {"settings": {"system": "x", "seed": 0}})
    assert diffs == ["settings.system: '' -> 'x'"]


def test_planned_keys_match_what_every_method_writes(shared_data_dir, tmp_path):
    """selection.planned_keys mirrors the runners' labels: a run with every method on writes exactly them."""
    from s1jax.cli import eval as cli
    from s1jax.config import load_config_file

    items = load_benchmark("aime24", str(shared_data_dir / "aime24.jsonl"), limit=len(NATURAL))
    cfg = load_config_file(str(CONFIG))
    cfg.budgets, cfg.num_ignore, cfg.steps, cfg.majority_samples = (512, 1024), (0, 1), (4,), 2
    cfg.rejection_max_tries = 2
    for m in cli._METHODS:
        cfg[m] = True
    cfg.progress = False
    writer = ResultsWriter(str(tmp_path / "r.jsonl"))
    gen = _fake_generate(items, [])
    sweep = FakeSweep(items)
    cli._run_methods(cfg, items, gen, sweep.by_level, writer)
    written = {(r["method"], r["point"], r["item_id"], r["sample"]) for r in writer.records}
    assert written == planned_keys(cfg, [it.id for it in items])
    # a record of another run (foreign fingerprint) or outside the plan is not selected
    keys = planned_keys(cfg, [it.id for it in items[:2]])
    stamped = [{**r, "fingerprint": "f"} for r in writer.records]
    assert len(select_records(stamped, keys, "f")) == len(keys) and select_records(stamped, keys, "g") == []
