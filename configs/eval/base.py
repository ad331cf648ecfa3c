"""Every field of ``s1jax eval`` with its default; ``:BENCHMARK`` (aime24 | aime24_nofigures | math500 | gpqa) picks
the benchmark, its local data file and its budget sweep. ``configs/eval/{aime24,aime24_nofigures,math500,gpqa}.py``
are this file with their name.

    s1jax eval --config=configs/eval/base.py:math500 --config.model.path=PATH [--config.limit=5]

Methods (each a switch): ``budget_forcing`` (the sweep over ``budgets``), ``num_ignore_sweep`` ("Wait"
extrapolation), token / step / class conditional control (each with and without budget forcing), rejection sampling
and majority voting.
"""

import os

import ml_collections

from s1jax.inference.hosts import distributed_group
from s1jax.inference.mesh import mesh_group
from s1jax.model.presets import model_group

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EVAL_DATA = os.path.join(_REPO_ROOT, "data", "eval")  # shipped AIME24 / MATH500 (data/eval/README.md)

# benchmark -> (local data file looked up in data/eval, the budget sweep)
BENCHMARKS = {
    "aime24": ("aime24.jsonl", (512, 1024, 2048, 4096, 8192)),
    "aime24_nofigures": ("aime24_nofigures.jsonl", (512, 1024, 2048, 4096, 8192)),  # the AIME24 text s1 reports on
    "math500": ("math500.jsonl", (512, 1024, 2048, 4096)),
    "gpqa": ("gpqa_diamond.jsonl", (512, 1024, 2048, 4096, 8192)),
}


def get_config(benchmark: str = "aime24") -> ml_collections.ConfigDict:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {sorted(BENCHMARKS)}")
    data_file, budgets = BENCHMARKS[benchmark]
    cfg = ml_collections.ConfigDict()
    # The model group every CLI shares; path (HF dir, .gguf or s1jax checkpoint) is required here, tokenizer
    # defaults to the one found with the weights.
    cfg.model = model_group(path="", preset="", dtype="bfloat16")
    cfg.system = ""  # "" = the chat format's default system message
    cfg.benchmark = benchmark
    local = os.path.join(EVAL_DATA, data_file) if data_file else ""
    cfg.data_path = local if local and os.path.isfile(local) else ""  # "" = the shipped copy, else the hub
    cfg.data_revision = ""  # hub dataset revision (a commit sha pins it) when loading from the hub
    cfg.tfds_dir = ""  # data dir of a tfds: data_path (tfds:aime24/1.0.0), as built by `s1jax data prepare`
    cfg.limit = 0  # number of items; 0 = all
    cfg.gpqa_ask_letter = False  # s1's GPQA prompt has no instruction; True appends one
    cfg.seed = 0
    # "" = runs/eval/<benchmark>/<model name>-<run fingerprint>: one directory per model and settings
    cfg.output_dir = ""
    cfg.overwrite = False  # True: a different run in output_dir is deleted instead of refusing to mix the two
    cfg.lmeval_outputs = True  # also write lm-eval's results_<date>.json and samples_<task>_<date>.jsonl
    cfg.bootstrap_samples = 2000  # resamples for the Scaling CI (0 = no CI)
    cfg.batch_size = 8  # device row slots decoded together (continuous batching refills a finished row's slot)
    cfg.call_size = 0  # questions per generate call and per JSONL append (the unit of resume); 0 = 4 x batch_size
    cfg.max_cache_len = 0  # KV-cache slots per row; 0 = sized from the largest budget + max_answer_tokens
    cfg.grade_timeout_s = 5.0
    cfg.save_token_ids = False
    cfg.progress = True
    # Devices (s1jax/inference/mesh.py): weights tensor-parallel over `tensor`, rows + KV cache over data x fsdp;
    # all 1 = one device. configs/eval/*_32b.py: a 32B model on a TPU slice or 8 GPUs.
    cfg.mesh = mesh_group(data=1, fsdp=1, tensor=1)
    cfg.distributed = distributed_group()  # jax.distributed, as in training (auto: started on multi-host)

    cfg.budget = ml_collections.ConfigDict()
    cfg.budget.max_answer_tokens = 512
    cfg.budget.ignore_str = "Wait"
    cfg.budget.uncapped_thinking_tokens = 32768  # "no budget forcing": only the context limits thinking

    cfg.sampling = ml_collections.ConfigDict()
    cfg.sampling.temperature = 0.0
    cfg.sampling.top_p = 1.0
    cfg.sampling.top_k = 0

    cfg.budget_forcing = True
    cfg.budgets = tuple(budgets)
    cfg.num_ignore_sweep = False
    cfg.num_ignore = (0, 1, 2, 4, 6)
    cfg.num_ignore_max_tokens = max(budgets)
    cfg.token_conditional = False
    cfg.token_conditional_bf = False
    cfg.step_conditional = False
    cfg.step_conditional_bf = False
    cfg.steps = (16, 32, 64, 128, 256)
    cfg.tokens_per_step = 100
    cfg.class_conditional = False
    cfg.class_conditional_bf = False
    cfg.class_budgets = (2048, 8192)
    cfg.rejection_sampling = False
    cfg.rejection_max_tries = 64
    cfg.majority_vote = False
    cfg.majority_samples = 8
    cfg.majority_temperature = 1.0
    return cfg
