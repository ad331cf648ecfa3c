"""s1jax.data"""
