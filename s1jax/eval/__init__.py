"""s1jax.eval"""
