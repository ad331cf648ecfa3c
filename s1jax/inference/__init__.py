"""s1jax.inference"""
