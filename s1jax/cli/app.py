"""The shell every command shares: argv -> absl flags + config -> validated config, and errors -> one line + exit code.

A command module defines a :class:`Command` (name, one-line summary, default config, shipped configs) and a
``main(argv) -> int`` that calls :func:`parse`, validates the whole config (raising :class:`ConfigError` naming the
field and the fix) *before* it loads a model, then does the work. :func:`run` turns exceptions into one line on
stderr and an exit code from :mod:`s1jax.cli.exit_codes` (a traceback only with ``--verbosity=1``); :func:`entry` is
the ``python -m s1jax.cli.<command>`` / console-script path through ``absl.app.run``.

Besides ``--config=FILE[:ARG]`` and ``--config.a.b=value`` (:mod:`s1jax.config`), every command accepts the absl
flags: ``--flagfile=F`` (one flag per line), ``--verbosity=N`` (``-v``), ``--logtostderr`` ..., and
``--help`` / ``--helpfull``, which list the command's config fields with their defaults and the shipped configs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence

import ml_collections
from absl import app as absl_app
from absl import flags, logging

from s1jax import exit_codes
from s1jax.config import CONFIGS_DIR, REPO_ROOT, ConfigError, flatten_config, load_config_file, parse_config_args
from s1jax.tokenizer.chat_format import ChatFormatError  # no chat format for a template-less tokenizer: a usage error

__all__ = ["Command", "parse", "run", "entry", "help_text", "is_main_process", "say", "output_dir", "ConfigError"]

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")


@dataclasses.dataclass(frozen=True)
class Command:
    """What ``--help`` shows and where the config comes from when ``--config`` is not given."""

    name: str
    summary: str  # one line
    doc: str  # the command module's docstring: usage and what it writes
    default_config: str | None = None  # used when --config is absent; None: --config is required
    fields_config: str | None = None  # the file whose fields --help lists (default: default_config)
    shipped: tuple[str, ...] = ()  # glob patterns under configs/ listed by --help

    def config_for_fields(self) -> str | None:
        return self.fields_config or self.default_config


def config_path(*parts: str) -> str:
    """A shipped config file: ``config_path("generate", "default.py")`` -> ``<repo>/configs/generate/default.py``."""
    return os.path.join(CONFIGS_DIR, *parts)


# ----------------------------------------------------------------------------------------------------------- help


def _first_doc_line(path: str) -> str:
    """The first line of a config file's docstring, without importing it."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(4096)
    except OSError:
        return ""
    for quote in ('"""', "'''"):
        start = text.find(quote)
        if start != -1:
            body = text[start + 3 :].strip()
            return body.splitlines()[0].strip() if body else ""
    return ""


def shipped_configs(command: Command) -> list[tuple[str, str]]:
    """``(path relative to the repo, first docstring line)`` of the command's shipped config files."""
    out = []
    for pattern in command.shipped:
        for path in sorted(glob.glob(os.path.join(CONFIGS_DIR, pattern))):
            out.append((os.path.relpath(path, os.path.dirname(CONFIGS_DIR)), _first_doc_line(path)))
    return out


def _config_spec(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def help_text(command: Command, argv: Sequence[str] = (), full: bool = False) -> str:
    """Usage, the config fields with their defaults (of ``--config`` when given, else the command's default or base
    config), the shipped configs, the absl flags and the exit codes."""
    lines = [f"s1jax {command.name}: {command.summary}", "", command.doc.strip(), ""]
    spec = _config_spec(argv) or command.config_for_fields()
    if spec:
        try:
            cfg = load_config_file(spec)
        except ConfigError as e:
            lines += [f"(cannot list the config fields: {e})", ""]
        else:
            fields = flatten_config(cfg)
            width = min(max((len(name) for name, _ in fields), default=0), 40)
            shown = os.path.relpath(spec, REPO_ROOT) if os.path.abspath(spec).startswith(REPO_ROOT) else spec
            lines.append(f"config fields (set with --config.FIELD=VALUE; defaults from {shown}):")
            lines += [f"  {name:<{width}}  {value!r}" for name, value in fields]
            lines.append("")
    if command.default_config:
        lines.append(f"default config: {os.path.relpath(command.default_config, os.path.dirname(CONFIGS_DIR))}")
    else:
        lines.append("--config=FILE[:ARG] is required")
    shipped = shipped_configs(command)
    if shipped:
        lines.append("shipped configs (--config=PATH):")
        width = max(len(p) for p, _ in shipped)
        lines += [f"  {path:<{width}}  {doc}" for path, doc in shipped]
    lines += [
        "",
        "flags: --config=FILE[:ARG] --config.FIELD=VALUE (also '--config.FIELD VALUE'), --flagfile=FILE (one flag per",
        "       line), --verbosity=N (0: library INFO logs, 1: tracebacks and debug logs), --helpfull (absl flags too)",
        "exit codes: " + "; ".join(f"{code} {text}" for code, text in exit_codes.DESCRIPTIONS.items()),
    ]
    if full:
        lines += ["", "absl flags:", flags.FLAGS.main_module_help() or flags.FLAGS.get_help()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- parse


def _absl_flag(arg: str) -> flags.Flag | None:
    """The absl flag ``arg`` sets (``--verbosity=1``, ``-v``, ``--nologtostderr``), else None."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    name = arg.lstrip("-").split("=", 1)[0]
    if name.startswith("config"):
        return None
    fv = flags.FLAGS
    if name in fv:
        return fv[name]
    if name.startswith("no") and name[2:] in fv and fv[name[2:]].boolean:
        return fv[name[2:]]
    return None


def split_absl_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(absl flag arguments, the rest)``: ``--verbosity 1`` keeps its value token with it."""
    absl_args: list[str] = []
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        flag = _absl_flag(args[i])
        if flag is None:
            rest.append(args[i])
        else:
            absl_args.append(args[i])
            if "=" not in args[i] and not flag.boolean and i + 1 < len(args):
                absl_args.append(args[i + 1])
                i += 1
        i += 1
    return absl_args, rest


def _parse_absl(argv: Sequence[str]) -> list[str]:
    """Expand ``--flagfile``, parse the absl flags (verbosity, logging), return what is left for the config."""
    flags.FLAGS.unparse_flags()  # each call starts from the defaults (main() may run several times in-process)
    try:
        argv = flags.FLAGS.read_flags_from_files(list(argv), force_gnu=False)
        absl_args, rest = split_absl_flags(argv)
        flags.FLAGS(["s1jax"] + absl_args, known_only=False)
    except flags.Error as e:
        raise ConfigError(str(e)) from e
    if flags.FLAGS["verbosity"].using_default_value:
        # WARNING: the commands print their own progress; the libraries' INFO logs (Orbax writes ~100 lines per
        # checkpoint, JAX one per missing backend) would bury it. --verbosity=0 shows them.
        flags.FLAGS.verbosity = logging.WARNING
    logging.set_verbosity(flags.FLAGS.verbosity)
    return rest


def parse(command: Command, argv: Sequence[str] | None) -> ml_collections.ConfigDict | None:
    """The command's config from ``argv`` (without the program name); None when help was printed instead.

    Raises ConfigError (exit code 2) for an unknown flag, a bad override, a missing config file, or arguments that
    are not flags (every setting is a config field).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_FLAGS for a in argv):
        print(help_text(command, argv, full="--helpfull" in argv))
        return None
    rest = _parse_absl(argv)
    cfg, extra = parse_config_args(rest, default_config=command.default_config)
    if extra:
        raise ConfigError(f"unexpected arguments {extra}; set config fields with --config.FIELD=VALUE "
                          f"(s1jax {command.name} --help lists them)")
    return cfg


def verbose() -> bool:
    return flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].value >= 1


# ------------------------------------------------------------------------------------------------------------ run


def is_main_process() -> bool:
    """True on process 0 (or before JAX is imported): only it prints and writes outputs."""
    jax = sys.modules.get("jax")
    return jax is None or jax.process_index() == 0


def say(msg: str = "") -> None:
    """Print a progress/result line on process 0 only (logs go through absl.logging)."""
    if is_main_process():
        print(msg, flush=True)


@contextlib.contextmanager
def output_dir(path: str) -> Iterator[str]:
    """Create ``path`` (and missing parents) when the work starts; if the work fails, remove the directories this
    call created that are still empty, so a failed run leaves nothing half-made behind."""
    path = os.path.abspath(path)
    created = []
    probe = path
    while probe and not os.path.exists(probe):
        created.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    os.makedirs(path, exist_ok=True)
    try:
        yield path
    except BaseException:
        for d in created:  # deepest first
            if os.path.isdir(d) and not os.listdir(d):
                shutil.rmtree(d, ignore_errors=True)
        raise


def _usage_error(e: BaseException) -> bool:
    return isinstance(e, (ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                          ChatFormatError))


def run(main: Callable[[list[str]], int | None], argv: Sequence[str] | None, name: str) -> int:
    """Call ``main(argv)`` and map what it raises to one stderr line and an exit code (:mod:`exit_codes`)."""
    try:
        return int(main(list(sys.argv[1:] if argv is None else argv)) or exit_codes.OK)
    except BrokenPipeError:  # `s1jax generate --help | head`: the reader left, nothing is wrong
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
        return exit_codes.OK
    except KeyboardInterrupt:
        print(f"s1jax {name}: interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one place errors become exit codes
        if verbose():
            traceback.print_exc()
        usage = _usage_error(e)
        kind = "error" if usage else f"failed ({type(e).__name__})"
        hint = "" if verbose() else " [--verbosity=1 shows the traceback]"
        message = str(e) or type(e).__name__
        print(f"s1jax {name}: {kind}: {message}" + ("" if usage else hint), file=sys.stderr)
        return exit_codes.USAGE if usage else exit_codes.FAILURE


def _absl_flags_parser(argv: list[str]) -> list[str]:
    # Every flag is parsed by the command itself (parse() above), so it also works when main() is called in-process.
    flags.FLAGS.mark_as_parsed()
    return argv


def entry(main: Callable[[list[str]], int | None], name: str, argv: Sequence[str] | None = None) -> None:
    """``python -m s1jax.cli.<name>`` / console scripts: ``absl.app.run`` (absl logging set up) + :func:`run`;
    exits the process with the exit code."""
    argv = list(sys.argv if argv is None else argv)

    def finish(args: list[str]) -> int:
        code = run(main, args[1:], name)
        exit_codes.leave_process(code)  # a failed run must end even if a writer thread hangs on dead storage
        return code

    absl_app.run(finish, argv=argv, flags_parser=_absl_flags_parser)
