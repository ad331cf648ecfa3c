"""Command-line entry points: one module per command, each exposing ``main(argv) -> int``."""
