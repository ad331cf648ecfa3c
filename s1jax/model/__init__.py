"""s1jax.model"""
