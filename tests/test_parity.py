"""``s1jax parity``: the metrics on known inputs (NumPy), the command on a tiny random Qwen2 HF checkpoint (passes in
float32 and bfloat16, budget forcing identical in float32), and a perturbed s1jax weight (a loader bug) failing it
with exit code 4. The SmolLM2 run (GGUF -> HF dir, 135M in transformers) is `slow`.

The tiny checkpoint is the generation tests' model (tests/gen_fixtures.py) saved as HF, and the prompts, budget and
logits width are those of tests/test_budget_forcing.py, so s1jax's programs are the ones the suite already compiled
(the session's persistent compilation cache serves them)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from s1jax import exit_codes
from s1jax.parity.metrics import logit_stats, token_stats

WIDTH = 256  # tests/test_budget_forcing.py's reference forward width
BUDGET_FLAGS = ["--config.budget.max_thinking_tokens=40", "--config.budget.num_ignore=2",
                "--config.budget.max_answer_tokens=10"]  # COMBOS[1] of tests/test_budget_forcing.py


def test_logit_stats_known_values():
    ref = np.zeros((1, 3, 4), np.float32)
    ref[0, :, 0] = 2.0
    ours = ref.copy()
    ours[0, 1, 1] = 0.5  # one position moves mass to token 1
    ours[0, 2] = [0.0, 3.0, 0.0, 0.0]  # argmax flips
    mask = np.array([[1, 1, 1]])
    s = logit_stats(ref, ours, mask)
    p = np.exp([2.0, 0, 0, 0]) / np.exp([2.0, 0, 0, 0]).sum()
    q1 = np.exp([2.0, 0.5, 0, 0]) / np.exp([2.0, 0.5, 0, 0]).sum()
    q2 = np.exp([0, 3.0, 0, 0]) / np.exp([0, 3.0, 0, 0]).sum()
    kls = [0.0, (p * np.log(p / q1)).sum(), (p * np.log(p / q2)).sum()]
    assert s.tokens == 3 and s.max_abs_diff == 3.0 and s.max_abs_ref == 2.0
    assert s.max_abs_diff_rel == 1.5 and s.top1_agreement == pytest.approx(2 / 3)
    assert s.max_kl == pytest.approx(max(kls), rel=1e-9) and s.mean_kl == pytest.approx(np.mean(kls), rel=1e-9)
    assert logit_stats(ref, ours, np.array([[1, 1, 0]])).top1_agreement == 1.0  # padding is not compared


def test_token_stats_divergence_and_ties():
    assert token_stats([1, 2, 3], [1, 2, 3]).first_divergence is None
    g = token_stats([1, 2, 3, 4], [1, 2, 9, 4], [{1: 0.0}, {2: 0.0}, {3: 5.0, 9: 4.9}, {}], tie_gap=0.2)
    assert (g.first_divergence, g.ref_token, g.ours_token, g.tie) == (2, 3, 9, True)
    assert g.ref_gap == pytest.approx(0.1) and g.agreement == 0.75
    assert not token_stats([1, 2, 3], [1, 2, 9], [{}, {}, {3: 5.0, 9: 4.0}], tie_gap=0.2).tie
    assert not token_stats([1, 2, 3], [1, 2, 9], [{}, {}, {3: 5.0}], tie_gap=1e9).tie  # s1jax's token not in top-k
    short = token_stats([1, 2], [1, 2, 5])
    assert (short.first_divergence, short.ref_token, short.ours_token) == (2, None, 5)


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import s1jax
    from gen_fixtures import tiny_model, tokenizer_dir

    out = tmp_path_factory.mktemp("parity") / "tiny_hf"
    path = s1jax.save_model(tiny_model(), str(out), tokenizer_path=tokenizer_dir())
    # The fixture tokenizer's EOS ids as load_tok() has them (<|endoftext|>, <|im_end|>), so budget forcing compiles
    # the same engine programs as tests/test_budget_forcing.py (the EOS ids are compiled-in constants).
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [0, 2]}))
    return path


def _argv(path, *extra):
    from gen_fixtures import QUESTIONS

    prompts = "(" + "".join(repr(q) + ", " for q in QUESTIONS[:4]) + ")"
    return ["parity", f"--config.model.path={path}", f"--config.prompts={prompts}", f"--config.logits_width={WIDTH}",
            "--config.budget_forcing_prompts=4", "--config.torch_threads=1", *BUDGET_FLAGS,
            *extra]


def _uncommitted(model):
    """The same values as uncommitted arrays (as tests/gen_fixtures.py's in-memory model has them): XLA then gets
    the very programs tests/test_budget_forcing.py compiled, served by the session's compilation cache. Loaded
    parameters are committed to device 0, a different compile key for identical math."""
    import jax
    import jax.numpy as jnp

    model.params = jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x)), model.params)
    return model


def test_parity_passes_on_tiny_qwen2(tiny_hf, tmp_path, capsys, monkeypatch):
    from s1jax.cli.main import main
    from s1jax.parity import runner

    original = runner.run_parity
    monkeypatch.setattr(runner, "run_parity", lambda *a, **k: original(*a, **k, jax_model_hook=_uncommitted))
    out = tmp_path / "parity.json"
    rc = main(_argv(tiny_hf, f"--config.output={out}"))
    printed = capsys.readouterr().out
    assert rc == exit_codes.OK, printed
    assert "parity: PASS" in printed and "float32" in printed and "bfloat16" in printed
    report = json.loads(out.read_text())
    fp32, bf16 = report["results"]
    assert fp32["dtype"] == "float32" and fp32["passed"] and bf16["passed"]
    assert fp32["logits"]["max_abs_diff_rel"] <= 1e-3 and fp32["logits"]["top1_agreement"] == 1.0
    # greedy budget forcing in float32: the PyTorch s1 loop and the jitted engine give the same tokens
    assert all(g["first_divergence"] is None and g["ref_len"] > 0 for g in fp32["generations"])
    assert len(fp32["generations"]) == 4


def test_perturbed_weight_fails_parity(tiny_hf, monkeypatch, capsys):
    """A loader bug (one weight matrix 1% off, on the s1jax side only) is caught by the float32 checks; the command
    exits 4 and names the failing checks."""
    from s1jax.cli.main import main
    from s1jax.parity import runner

    def perturb(model):  # layer 0's attention output projection 1% too large
        attn = dict(model.params["layers"]["self_attn"])
        kernel = attn["o_proj"]["kernel"]  # [layers, heads, head_dim, embed]
        attn["o_proj"] = {"kernel": kernel.at[0].multiply(1.01)}
        layers = {**model.params["layers"], "self_attn": attn}
        model.params = {**model.params, "layers": layers}
        return model

    original = runner.run_parity
    monkeypatch.setattr(runner, "run_parity", lambda *a, **k: original(*a, **k, jax_model_hook=perturb))
    rc = main(_argv(tiny_hf, "--config.dtypes=('float32',)", "--config.budget_forcing_prompts=0"))
    printed, err = capsys.readouterr()
    assert rc == exit_codes.PARITY_MISMATCH, printed
    assert "parity: FAIL" in printed and "FAIL float32: max |Δlogit|" in printed
    assert "past the thresholds" in err


def test_parity_usage_errors_before_loading(tiny_hf, tmp_path, capsys, monkeypatch):
    from s1jax.cli.main import main

    rc = main(["parity", f"--config.model.path={tiny_hf}", "--config.dtypes=('float64',)"])
    assert rc == exit_codes.USAGE and "float64" in capsys.readouterr().err
    rc = main(["parity", f"--config.model.path={tiny_hf}", "--config.thresholds.float32.min_top1=2.0"])
    assert rc == exit_codes.USAGE and "min_top1" in capsys.readouterr().err
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    rc = main(["parity", f"--config.model.path={gguf}"])
    assert rc == exit_codes.USAGE and "s1jax convert" in capsys.readouterr().err
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    rc = main(["parity", f"--config.model.path={tiny_hf}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == exit_codes.USAGE and len(err) == 1 and "pip install 'torch==2.13.0' transformers" in err[0], err


@pytest.mark.slow
def test_parity_smollm2_gguf_to_hf(tmp_path, capsys):
    """SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantised) -> HF dir (s1jax convert) -> parity in float32 and
    bfloat16 with budget forcing in float32 on two prompts: every default threshold holds on a real model."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from s1jax.cli.main import main
    from test_gguf import _find_smollm_gguf

    gguf = str(_find_smollm_gguf())
    hf_dir = tmp_path / "smollm2_hf"
    assert main(["convert", "--config=configs/convert.py", f"--config.input={gguf}", f"--config.output={hf_dir}",
                 "--config.tokenizer=none"]) == exit_codes.OK
    out = tmp_path / "parity.json"
    rc = main(["parity", f"--config.model.path={hf_dir}", f"--config.model.tokenizer={gguf}",
               "--config.torch_threads=1", f"--config.output={out}"])
    printed = capsys.readouterr().out
    print(printed[printed.find("dtype "):])
    assert rc == exit_codes.OK, printed
    report = json.loads(out.read_text())
    fp32 = report["results"][0]
    assert fp32["logits"]["top1_agreement"] >= 0.99 and len(fp32["generations"]) == 2
