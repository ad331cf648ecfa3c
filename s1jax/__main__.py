"""``python -m s1jax <command> ...``: the same as the ``s1jax`` console script."""

from s1jax.cli.main import main

if __name__ == "__main__":
    main()
