"""The command line as a new user meets it: ``--help`` lists fields and shipped configs, every bad input is one line
and exit code 2 before any model is loaded, and nothing is left on disk. Mostly in-process (``s1jax.cli.main.main``);
two subprocesses check ``python -m`` entry points and that no traceback reaches the user."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from gen_fixtures import tokenizer_dir
from s1jax import exit_codes
from s1jax.cli.main import COMMANDS, main
from s1jax.model.io.hf import write_safetensors
from s1jax.model.presets import preset_config

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_usage_error(rc, err, *needles):
    assert rc == exit_codes.USAGE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


HELP = {
    "generate": (["budget.max_thinking_tokens", "budget.min_thinking_tokens", "model.path", "sweep_budgets"],
                 "configs/generate/smollm2.py"),
    "eval": (["budgets", "model.path", "majority_vote", "budget.uncapped_thinking_tokens"], "configs/eval/aime24.py"),
    "train": (["train.lr", "mesh.fsdp", "data.source", "model.param_dtype"], "configs/train/s1_32b.py"),
    "convert": (["input", "output_format", "max_shard_gb"], "configs/convert.py"),
    "curate": (["diversity.num_select", "pool.source"], "configs/curate/sample.py"),
    "demo": (["train.steps", "eval.budgets"], "configs/demo.py"),
    "compile": (["target", "aot.mfu", "train.lr", "mesh.tensor"], "configs/aot/eval_32b.py"),
    "compare": (["a", "b", "b_budget", "bootstrap_samples", "match"], "configs/compare.py"),
    "data": (["data_dir", "datasets", "sources.s1k", "overwrite"], "configs/data/prepare.py"),
    "parity": (["thresholds.float32.max_kl", "budget_forcing_prompts", "model.path"], "configs/parity.py"),
}


def test_help_of_every_command_lists_fields_defaults_and_shipped_configs(capsys):
    assert set(HELP) == set(COMMANDS)
    for command, (fields, shipped) in HELP.items():
        rc, out, _ = _run(capsys, [command, "--help"])
        assert rc == 0, command
        for field in fields:
            assert f"  {field} " in out, (command, field)
        assert shipped in out and "exit codes: 0 success" in out, command
    rc, out, _ = _run(capsys, ["generate", "--help"])
    assert re.search(r"\n  budget\.max_thinking_tokens +-1\n", out)  # the default sits beside the field
    rc, out, _ = _run(capsys, ["train", "--config=configs/train/s1_32b.py", "--helpfull"])
    assert rc == 0 and re.search(r"\n  train\.lr +1e-05\n", out) and "--flagfile" in out


def test_no_command_and_unknown_command_are_usage_errors(capsys):
    rc, _, err = _run(capsys, [])
    assert rc == exit_codes.USAGE and "commands:" in err
    rc, _, err = _run(capsys, ["genrate"])
    assert rc == exit_codes.USAGE and "unknown command 'genrate'" in err
    rc, out, _ = _run(capsys, ["--help"])
    assert rc == 0 and "generate" in out


# ---------------------------------------------------------------------------------------------------------- generate


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad inputs on disk: an empty questions file, a checkpoint with a corrupt config.json, and one whose
    safetensors file is cut short."""
    root = tmp_path_factory.mktemp("cli_inputs")
    (root / "empty.jsonl").write_text("")
    corrupt = root / "corrupt_config"
    corrupt.mkdir()
    (corrupt / "config.json").write_text('{"model_type": "qwen2", ')
    truncated = root / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_text(json.dumps(preset_config("tiny").to_hf_dict()))
    shape = (512, 64)
    write_safetensors(str(truncated / "model.safetensors"),
                      [("model.embed_tokens.weight", shape, np.float32, lambda: np.zeros(shape, np.float32))])
    path = truncated / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-1000])
    return root


GENERATE_BAD = {
    "empty questions file": (["--config.questions_file={root}/empty.jsonl"], ["questions_file", "no questions"]),
    "negative budget": (["--config.budget.max_thinking_tokens=-5"], ["budget", "max_thinking_tokens"]),
    "budgets not numbers": (["--config.sweep_budgets=abc"], ["sweep_budgets", "integers"]),
    "min above max": (["--config.budget.min_thinking_tokens=50", "--config.budget.max_thinking_tokens=10"],
                      ["min_thinking_tokens=50", "max_thinking_tokens=10"]),
    "missing model path": (["--config.model.path={root}/nope"], ["model.path", "does not exist"]),
    "corrupt config.json": (["--config.model.path={root}/corrupt_config"], ["config.json", "malformed JSON"]),
    "truncated safetensors": (["--config.model.path={root}/truncated"],
                              ["model.safetensors", "model.embed_tokens.weight", "1000 missing", "truncated"]),
    "prompt longer than the context": (["--config.prompt=" + "word " * 5000], ["max_position_embeddings", "4096"]),
    "unknown field": (["--config.budget.max_thinkin_tokens=5"], ["max_thinkin_tokens", "max_thinking_tokens"]),
    "positional argument": (["stray"], ["unexpected arguments"]),
}


@pytest.mark.parametrize("case", sorted(GENERATE_BAD))
def test_generate_bad_inputs_fail_in_validation(case, files, tmp_path, capsys, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("s1jax.cli.generate.load_model_from_group", no_model)
    extra, needles = GENERATE_BAD[case]
    argv = ["generate", "--config=configs/generate/default.py", f"--config.model.tokenizer={tokenizer_dir()}",
            "--config.prompt=What is 1 + 2?", f"--config.output={tmp_path}/out/results.jsonl"]
    extra = [a.format(root=files) for a in extra]
    if any(a.startswith(("--config.questions_file", "--config.prompt")) for a in extra):
        argv = [a for a in argv if not a.startswith("--config.prompt")]
    rc, _, err = _run(capsys, argv + extra)
    _one_line_usage_error(rc, err, *needles)
    assert os.listdir(tmp_path) == []


# -------------------------------------------------------------------------------------------------- eval, train, ...


def test_eval_bad_inputs(tmp_path, capsys):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": "1 + 1?", "answer": "2"}) + "\n")
    out = tmp_path / "out"
    base = ["eval", "--config=configs/eval/aime24.py", "--config.benchmark=jsonl", f"--config.data_path={bench}",
            f"--config.output_dir={out}"]
    cases = [
        (["--config.model.path=m", "--config.budgets=()"], ["budgets", "empty"]),
        (["--config.model.path=m", "--config.budgets=abc"], ["budgets", "integers"]),
        (["--config.model.path=m", "--config.budgets=(512, -1)"], ["budgets", ">= 0"]),
        ([], ["model.path"]),
        ([f"--config.model.path={tmp_path}/missing"], ["missing", "does not exist"]),
    ]
    for extra, needles in cases:
        rc, _, err = _run(capsys, base + extra)
        _one_line_usage_error(rc, err, *needles)
        assert not out.exists()


def test_train_bad_inputs(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("")
    (data / "tokenizer.json").write_text("{}")
    out = tmp_path / "run"
    base = ["train", f"--config=configs/train/tiny.py:{data}", f"--config.train.output_dir={out}"]
    cases = [
        (["--config.mesh.data=3"], ["mesh data=3", "8 devices"]),
        ([f"--config.data.source={tmp_path}/nope.jsonl"], ["data.source", "does not exist"]),
        (["--config.train.grad_accum=3"], ["global_batch_size=8", "grad_accum=3"]),
        (["--config.train.remat=some"], ["train.remat"]),
        (["--config.model.preset=giant"], ["model.preset", "tiny"]),
    ]
    for extra, needles in cases:
        rc, _, err = _run(capsys, base + extra)
        _one_line_usage_error(rc, err, *needles)
        assert not out.exists()


def test_curate_and_convert_bad_inputs(tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = _run(capsys, ["curate", "--config=configs/curate/sample.py", "--config.diversity.num_select=0",
                               f"--config.output.dir={out}"])
    _one_line_usage_error(rc, err, "diversity.num_select")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    rc, _, err = _run(capsys, ["convert", f"--config.input={tmp_path}/full", f"--config.output={tmp_path}/full"])
    _one_line_usage_error(rc, err, "not empty", "overwrite")
    assert not out.exists()


def test_flagfile_and_verbosity(tmp_path, capsys):
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text("--config=configs/generate/default.py\n--config.budget.max_thinking_tokens=-5\n")
    rc, _, err = _run(capsys, ["generate", f"--flagfile={flagfile}", "--config.prompt=hi",
                               f"--config.model.tokenizer={tokenizer_dir()}"])
    _one_line_usage_error(rc, err, "max_thinking_tokens")
    rc, _, err = _run(capsys, ["generate", f"--flagfile={flagfile}", "--config.prompt=hi", "--verbosity=1",
                               f"--config.model.tokenizer={tokenizer_dir()}"])
    assert rc == exit_codes.USAGE and "Traceback" in err  # --verbosity=1 shows where it came from
    rc, _, err = _run(capsys, ["generate", f"--flagfile={tmp_path}/missing.txt"])
    _one_line_usage_error(rc, err, "missing.txt")


def test_python_m_entry_points(tmp_path):
    """``python -m s1jax.cli.generate`` runs (no silent exit 0) and reports a bad value in one line; ``python -m
    s1jax`` with no command is a usage error."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "s1jax.cli.generate", "--config.prompt=hi", "--config.budget.max_thinking_tokens=-5",
           f"--config.model.tokenizer={tokenizer_dir()}", f"--config.output={tmp_path}/o.jsonl"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == exit_codes.USAGE, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "max_thinking_tokens" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "s1jax"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == exit_codes.USAGE and "usage: s1jax <command>" in p.stderr
    assert os.listdir(tmp_path) == []
