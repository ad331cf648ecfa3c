"""Numerical parity of a checkpoint between transformers (PyTorch) and s1jax: logits, per-token KL, top-1, and greedy
budget forcing (the s1 reference loop on PyTorch vs s1jax's jitted engine), in float32 and bfloat16.

    s1jax parity --config=configs/parity.py --config.model.path=Qwen/Qwen2.5-0.5B-Instruct
    s1jax parity --config=configs/parity.py --config.model.path=/ckpt/hf_dir --config.dtypes="('float32',)"

Exits 0 when every check passes, 4 past a threshold (each failure printed), 2 on a bad config. Needs torch and
transformers (the test extras). CPU for small models; on a GPU machine both frameworks use it (torch_device=auto),
one at a time, so a model that fits once is checked.
"""

import ml_collections


def _thresholds(max_abs_diff_rel: float, max_kl: float, mean_kl: float, min_top1: float) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(max_abs_diff_rel=max_abs_diff_rel, max_kl=max_kl, mean_kl=mean_kl,
                                          min_top1=min_top1))


def get_config():
    cfg = ml_collections.ConfigDict()
    cfg.model = ml_collections.ConfigDict()
    cfg.model.path = ""  # a HF checkpoint directory or a hub id (org/name[@revision])
    cfg.model.tokenizer = ""  # "" = the tokenizer in model.path
    cfg.model.chat_format = ""  # "" = auto (Qwen: s1's ChatML; others: their chat template); see model_group
    cfg.dtypes = ("float32", "bfloat16")  # each: both frameworks load the checkpoint in that dtype
    cfg.torch_device = "auto"  # "auto": cuda when torch sees a GPU, else cpu; JAX uses its default backend
    cfg.torch_threads = 0  # torch CPU threads; 0 = torch's default. 1 on a shared/busy CPU: OpenMP spin-waiting on
    # oversubscribed cores makes small models 10x slower
    cfg.prompts = (
        "What is 12 * 7? Explain step by step.",
        "How many r are in the word raspberry?",
        "Find all real x with x^2 - 5x + 6 = 0.",
        "A train travels 60 km in 45 minutes. What is its average speed in km/h?",
    )
    cfg.prompts_file = ""  # .jsonl ("question"/"problem") or .txt (one per line): replaces prompts
    cfg.system = ""  # "" = the chat format's default system message
    cfg.logits_width = 0  # prompts are run one at a time, left-padded to this width; 0 = longest, rounded up to 64
    cfg.budget_forcing_prompts = 2  # the first N prompts also go through greedy budget forcing; 0 = logits only
    # Budget forcing in these dtypes only: in float32 the two greedy sequences must agree up to a near-tie, a sharp
    # check; in bfloat16 near-ties are everywhere (the allowed logit gap is ~10% of the largest logit), so greedy
    # sequences part within a few tokens and say little beyond the logit checks. Add "bfloat16" to see it anyway.
    cfg.budget_forcing_dtypes = ("float32",)
    cfg.output = ""  # optional JSON report path

    # Budget forcing (s1jax.Budget fields), short so a CPU run takes seconds on a small model: a cap, one ignored
    # stop ("Wait"), a short answer. Greedy decoding (both sides take the argmax over the tokenizer's ids).
    cfg.budget = ml_collections.ConfigDict()
    cfg.budget.max_thinking_tokens = 32
    cfg.budget.min_thinking_tokens = 0
    cfg.budget.num_ignore = 1
    cfg.budget.ignore_str = "Wait"
    cfg.budget.thinking_start = "<|im_start|>think"
    cfg.budget.thinking_end = "<|im_start|>answer"
    cfg.budget.stop_thinking = "<|im_start|>"
    cfg.budget.final_answer_str = "Final Answer:"
    cfg.budget.max_answer_tokens = 16
    cfg.budget.answer_stop = "<|im_end|>"

    # Pass limits. Logit differences are relative to the largest |reference logit| (L: its scale, ~20-40 for real
    # LMs), KL is KL(transformers || s1jax) of each position's next-token distribution (as MaxText's
    # forward_pass_logit_checker reports it), top-1 is the fraction of positions whose argmax agrees. A budget-forcing
    # divergence passes only at a near-tie: where the reference's logits of the two tokens differ by at most
    # 2 * max_abs_diff_rel * L (two implementations each within the logit limit can order such tokens either way).
    cfg.thresholds = ml_collections.ConfigDict()
    # float32: a reduction of K terms in random order errs by ~eps32 * sqrt(K) (eps32 = 1.2e-7); a forward chains
    # ~6 of them per layer, so the relative logit error is ~eps32 * sqrt(K) * sqrt(6 L_layers): 3.9e-4 for the 32B
    # (K = 27648, 64 layers), 1e-4 for 0.5B. 1e-3 covers that with 2.5x; a mapping/loader bug moves logits by O(10%).
    # KL(p || softmax(z + d)) ~ Var_p(d) / 2 <= max|d|^2 / 2 = (1e-3 * 40)^2 / 2 = 8e-4 -> max_kl 1e-3; a typical d is
    # an order below the max, so mean_kl 1e-4 (10x the Var of the typical d). Argmax flips only at near-ties: 0.99.
    # (SmolLM2-135M measures 2.5e-6 relative, KL ~1e-9: these limits are loose for healthy models, tight for bugs.)
    cfg.thresholds.float32 = _thresholds(max_abs_diff_rel=1e-3, max_kl=1e-3, mean_kl=1e-4, min_top1=0.99)
    # bfloat16 (params and compute in bf16 on both sides): one rounding is u = 2^-8 = 3.9e-3 relative; ~6 rounded
    # stages per layer add at random, and two independent bf16 implementations differ by sqrt(2) times one's error:
    # sqrt(2) * u * sqrt(6 L_layers) = 0.11 for 64 layers -> 0.12. With per-position noise d of std s: KL ~ s^2 / 2;
    # s <= 0.3 (s1jax bf16 vs fp32 on SmolLM2: mean |d| 0.14, x sqrt(2) for two bf16 sides) gives mean_kl 0.05;
    # the worst of a few hundred positions is allowed 10x the mean, 0.5. Near-tie flips: >= 90% top-1 (SmolLM2
    # measured 95% bf16 vs fp32). bf16 catches gross errors; float32 is the sharp check.
    cfg.thresholds.bfloat16 = _thresholds(max_abs_diff_rel=0.12, max_kl=0.5, mean_kl=0.05, min_top1=0.9)
    cfg.thresholds.float16 = _thresholds(max_abs_diff_rel=0.03, max_kl=0.05, mean_kl=5e-3, min_top1=0.97)  # u = 2^-11
    return cfg
