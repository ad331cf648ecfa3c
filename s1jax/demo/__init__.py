"""The embedded demo (`make demo` / `s1jax demo`): the whole s1 pipeline on SmolLM2-135M-Instruct on a CPU.

``tasks``: an offline generator of s1K-format reasoning problems; ``pipeline``: the stages (load, data + curation,
budget forcing on the base model, SFT, budget forcing on the fine-tuned model, report). See docs/demo.md.
"""
