"""Budget-forced generation: every field of ``s1jax generate`` with its default. A random `tiny` model by default;
point it at real weights with ``--config.model.path=DIR_OR_GGUF``.

    s1jax generate --config=configs/generate/default.py --config.model.path=PATH \
        --config.prompt="How many r in raspberry?" --config.budget.max_thinking_tokens=2000 --config.budget.num_ignore=1

Questions come from ``prompt`` (one string) or ``questions_file`` (JSONL/JSON/parquet rows with a "question" or
"problem" field, or a .txt file with one question per line). With ``sweep_budgets`` set, one thinking pass per
question branches an answer at every budget (one output line per budget).
"""

import ml_collections

from s1jax.inference.hosts import distributed_group
from s1jax.inference.mesh import mesh_group
from s1jax.model.presets import model_group


def get_config():
    cfg = ml_collections.ConfigDict()
    cfg.model = model_group(preset="tiny")  # path: HF dir / .gguf / checkpoint; empty = random `preset`
    cfg.prompt = ""  # one question; or
    cfg.questions_file = ""  # JSONL ("question" or "problem") or .txt (one question per line)
    cfg.limit = 0  # questions to use from the file; 0 = all
    cfg.output = "runs/generate/results.jsonl"  # "" = print only
    cfg.system = ""  # "" = the chat format's default system message
    cfg.no_system = False  # True: no system turn at all
    cfg.stream = False  # print the first question's text as it is decoded
    cfg.batch_size = 8  # questions per jitted call; 0 = all at once
    cfg.max_cache_len = 0  # 0 = prompt + budgets (rounded up to a bucket)
    cfg.sweep_budgets = ()  # e.g. (512, 1024, 2048): think once, answer at each budget
    cfg.progress = True
    # Devices (s1jax/inference/mesh.py): weights tensor-parallel over `tensor` (heads / MLP / vocab), rows and the KV
    # cache over data x fsdp (fsdp is a second row axis at inference: weights are never all-gathered per token).
    # All 1 = one device; e.g. tensor=8 on 8 GPUs. Multi-host: the product covers every host's devices (-1 fills).
    cfg.mesh = mesh_group(data=1, fsdp=1, tensor=1)
    cfg.distributed = distributed_group()  # jax.distributed, as in training (auto: started on multi-host)

    # s1jax.Budget fields (s1 budget forcing); see s1jax/inference/budget.py
    cfg.budget = ml_collections.ConfigDict()
    cfg.budget.max_thinking_tokens = -1  # -1 = unlimited (the cache / max_position_embeddings limits it)
    cfg.budget.min_thinking_tokens = 0
    cfg.budget.num_ignore = 0
    cfg.budget.ignore_str = "Wait"
    cfg.budget.thinking_start = "<|im_start|>think"
    cfg.budget.thinking_end = "<|im_start|>answer"
    cfg.budget.stop_thinking = "<|im_start|>"
    cfg.budget.final_answer_str = "Final Answer:"
    cfg.budget.max_answer_tokens = 512
    cfg.budget.answer_stop = "<|im_end|>"

    # s1jax.Sampling fields; temperature 0 = greedy
    cfg.sampling = ml_collections.ConfigDict()
    cfg.sampling.temperature = 0.0
    cfg.sampling.top_p = 1.0
    cfg.sampling.top_k = 0
    cfg.sampling.seed = 0
    return cfg
