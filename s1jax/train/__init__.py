"""s1jax.train"""
