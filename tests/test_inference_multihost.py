"""Two local processes (jax.distributed on 127.0.0.1, gloo CPU collectives, 2 devices each) generate and evaluate
the tiny model on one (data=2, tensor=2) mesh over all 4 devices: the same tokens and the same results file as one
unsharded process, the file written once (by process 0), eval resume decided alike on both hosts (the second run
only generates the new items on both, or the collective programs would deadlock), and hosts that disagree on the
question list fail with both counts.

One subprocess pair does everything (its generate and eval share one compiled engine: same budget, slots and
cache), and the one-process reference runs here with the engine test_engine_continuous already compiled (same
model, tokenizer, budget strings, slots and cache length): in a suite run only the subprocesses compile.
"""

from __future__ import annotations

import json
import re

import pytest

import s1jax
from gen_fixtures import QUESTIONS, load_tok, tiny_model, tokenizer_dir
from multihost import REPO, free_address, run_two_processes
from s1jax.eval.benchmarks import load_benchmark
from s1jax.eval.report import load_records

# The eval items are gen_fixtures' questions and the budget is like test_engine_continuous's: the one-process
# reference then compiles programs the suite already has (same shapes) and mostly loads them from the session cache.
PROBLEMS = list(zip(QUESTIONS[:4], ("3", "3", "20", "3")))
BUDGET = 40  # one budget: the eval's sweep is one level, i.e. the same engine as generate with this budget
ANSWER_TOKENS = 12

DRIVER = r"""
import json, sys
sys.path.insert(0, {tests!r})
import ml_collections
from s1jax.train import distributed
distributed.initialize(ml_collections.ConfigDict(dict(
    mode="on", coordinator_address={addr!r}, num_processes=2, process_id=int(sys.argv[1]), local_device_ids="",
    initialization_timeout=120)))
import jax
import s1jax
from s1jax.cli import eval as cli
from s1jax.inference import hosts
from s1jax.sharding import INFERENCE_RULES, make_mesh
assert jax.process_count() == 2 and jax.device_count() == 4, (jax.process_count(), jax.device_count())
pid = jax.process_index()
try:
    hosts.check_same_on_hosts(["q"] * (2 + pid))
    print("DISAGREE none", flush=True)
except ValueError as e:
    print("DISAGREE " + str(e), flush=True)
mesh = make_mesh(2, 1, 2)
model = s1jax.load_model({model!r}, dtype="float32", mesh=mesh, rules=INFERENCE_RULES)
tok = s1jax.load_tokenizer({tokenizer!r})
res = s1jax.generate(model, tok, {prompts!r}, budget=s1jax.Budget(max_thinking_tokens={budget},
                     max_answer_tokens={answer}), batch_size=2, progress=False)
print("TOKENS " + json.dumps([r.token_ids for r in res]), flush=True)
for limit in (2, 4):  # the second run resumes from the first's records
    assert cli.main({argv!r} + ["--config.limit=%d" % limit, "--config.mesh.data=2", "--config.mesh.tensor=2"]) == 0
print("DONE", flush=True)
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("multihost")
    model_dir = root / "model"
    s1jax.save_model(tiny_model(), str(model_dir), format="hf", tokenizer_path=tokenizer_dir())
    bench = root / "bench.jsonl"
    bench.write_text("".join(json.dumps({"problem": p, "answer": a}) + "\n" for p, a in PROBLEMS), encoding="utf-8")
    return root, model_dir, bench


def _eval_argv(model_dir, bench, out):
    return ["--config=" + str(REPO / "configs" / "eval" / "aime24.py"), "--config.benchmark=jsonl",
            f"--config.data_path={bench}", f"--config.model.path={model_dir}", "--config.model.dtype=float32",
            f"--config.model.tokenizer={tokenizer_dir()}",  # gen_fixtures' tokenizer: the engine of the suite
            f"--config.output_dir={out}", f"--config.budgets=({BUDGET},)", "--config.batch_size=2",
            # one generate call per 2 questions in both runs (the two-process run resumes from limit=2): the same
            # calls, so the same cache shapes and, for a random tiny model full of near-ties, the same tokens
            "--config.call_size=2",
            "--config.progress=false", f"--config.budget.max_answer_tokens={ANSWER_TOKENS}"]


def test_two_processes_match_one(setup):
    root, model_dir, bench = setup
    prompts = [it.prompt_text for it in load_benchmark("jsonl", str(bench))]
    multi_out = root / "multi"
    script = DRIVER.format(tests=str(REPO / "tests"), addr=free_address(), model=str(model_dir),
                           tokenizer=tokenizer_dir(),
                           prompts=prompts, budget=BUDGET, answer=ANSWER_TOKENS,
                           argv=_eval_argv(model_dir, bench, multi_out))
    outputs = run_two_processes(script)

    def line(output, tag):
        return next(x[len(tag) + 1:] for x in output.splitlines() if x.startswith(tag + " "))

    for output in outputs:  # both hosts fail the question check, naming both counts
        assert "hosts disagree on the questions: process 0 has 2" in line(output, "DISAGREE")
        assert "process 1 has 3" in line(output, "DISAGREE")
        assert "DONE" in output.splitlines()

    # one unsharded process: the same generate call (the in-memory model the HF dir was written from) and the eval
    single = s1jax.generate(tiny_model(), load_tok(), prompts, budget=s1jax.Budget(max_thinking_tokens=BUDGET,
                            max_answer_tokens=ANSWER_TOKENS), batch_size=2, progress=False)
    tokens = [r.token_ids for r in single]
    assert json.loads(line(outputs[0], "TOKENS")) == tokens == json.loads(line(outputs[1], "TOKENS"))

    from s1jax.cli import eval as cli

    single_out = root / "single"
    assert cli.main(_eval_argv(model_dir, bench, single_out) + ["--config.limit=4"]) == 0
    multi = load_records(str(multi_out / "results.jsonl"))
    assert len(multi) == len(PROBLEMS)  # written once: no host appended twice, the resumed run added items 3-4
    assert multi == load_records(str(single_out / "results.jsonl"))
    assert (multi_out / "results.jsonl").read_bytes() == (single_out / "results.jsonl").read_bytes()
    # the same kinds of files (lm-eval's results/samples names carry the time of each run; the two-process dir had two)
    def kinds(d):
        return {re.sub(r"_\d{4}-\d\d-\d\dT[\d.-]+", "_<date>", p.name) for p in d.iterdir()}

    assert kinds(multi_out) == kinds(single_out)
    # process 0 alone printed (the eval prints its markdown table and the paths it wrote)
    assert "results: " in outputs[0] and "results: " not in outputs[1]
    assert "resuming: 2 generations" in outputs[0]
