"""Hugging Face hub ids (``org/name`` or ``org/name@revision``) -> a local snapshot directory.

Every loader (weights, config, tokenizer) and every command resolves its checkpoint path through
:func:`resolve_checkpoint`: an existing local path is returned unchanged, a hub id is downloaded once with
``huggingface_hub.snapshot_download`` (weights, config and tokenizer files only: no README, no GGUF/PyTorch/ONNX
duplicates of the weights) into the standard HF cache (``HF_HUB_CACHE`` / ``HF_HOME``), and anything else is one
clear error. ``HF_HUB_OFFLINE=1`` is honoured at call time: a cached snapshot loads, a missing one is an error that
says so, before any model work starts.

On multi-host runs process 0 downloads while the others wait at a barrier, then read the same cache (a shared
filesystem) or, if their cache is host-local and still empty, download it themselves; so N hosts never hit the hub N
times at once on a shared cache and never read a half-written snapshot.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "ALLOW_PATTERNS",
    "TOKENIZER_FILES",
    "HubId",
    "HubError",
    "parse_hub_id",
    "looks_like_hub_id",
    "resolve_checkpoint",
    "download_snapshot",
]

# A tokenizer's files (its chat template included), as saved beside a checkpoint and downloaded with it.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
# What a checkpoint needs: config, safetensors weights (+ index), tokenizer files.
ALLOW_PATTERNS = ("config.json", "*.safetensors", "*.safetensors.index.json") + TOKENIZER_FILES

# org/name[@revision]: the hub's own rules (letters, digits, '-', '_', '.'; no leading '.' or '-'), one slash.
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})(?:@(?P<rev>[\w./-]{1,200}))?$")


class HubError(FileNotFoundError):
    """A hub id that cannot be resolved (offline and not cached, unknown repo or revision, gated). A
    FileNotFoundError, so commands report it as a usage error (exit code 2) in one line."""


class HubId(tuple):
    """``(repo_id, revision or None)``."""

    def __new__(cls, repo_id: str, revision: str | None) -> "HubId":
        return super().__new__(cls, (repo_id, revision))

    @property
    def repo_id(self) -> str:
        return self[0]

    @property
    def revision(self) -> str | None:
        return self[1]

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_hub_id(text: str) -> HubId | None:
    """``HubId`` when ``text`` has the shape of a hub id (``org/name`` or ``org/name@rev``), else None. Paths that
    start with ``.``, ``/`` or ``~``, have more than one ``/``, or end in ``.gguf``/``.json`` are never hub ids."""
    text = os.fspath(text)
    if text.startswith((".", "/", "~")) or text.lower().endswith((".gguf", ".json", ".model")):
        return None
    m = _HUB_ID.match(text)
    if m is None or m.group("repo").endswith((".", "-")) or ".." in m.group("repo"):
        return None
    return HubId(m.group("repo"), m.group("rev"))


def looks_like_hub_id(text: str) -> bool:
    return parse_hub_id(text) is not None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _cache_dir() -> str | None:
    """Read at call time (huggingface_hub reads its constants once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def download_snapshot(hub_id: HubId, *, local_files_only: bool = False) -> str:
    """``snapshot_download`` of the checkpoint files of ``hub_id``; the local snapshot directory. Raises HubError
    with the reason and the fix."""
    try:
        import huggingface_hub
        from huggingface_hub import errors as hf_errors
    except ImportError as e:  # a core dependency; only a broken install gets here
        raise HubError(f"{hub_id} looks like a hub id but huggingface_hub is not installed "
                       "(pip install huggingface_hub)") from e
    offline = local_files_only or _offline()
    try:
        path = huggingface_hub.snapshot_download(
            hub_id.repo_id,
            revision=hub_id.revision,
            cache_dir=_cache_dir(),
            allow_patterns=list(ALLOW_PATTERNS),
            local_files_only=offline,
        )
    except hf_errors.GatedRepoError as e:
        raise HubError(f"hub repo {hub_id.repo_id!r} is gated: accept its licence on huggingface.co and log in "
                       "(huggingface-cli login or HF_TOKEN)") from e
    except hf_errors.RevisionNotFoundError as e:
        raise HubError(f"hub repo {hub_id.repo_id!r} has no revision {hub_id.revision!r}") from e
    except hf_errors.RepositoryNotFoundError as e:
        raise HubError(f"{str(hub_id)!r} is neither a local path nor a hub repo the hub knows (private repos need "
                       "HF_TOKEN)") from e
    except hf_errors.LocalEntryNotFoundError as e:
        where = _cache_dir() or "the default HF cache"
        if offline:
            raise HubError(f"{str(hub_id)!r} is not a local path, and as a hub id it is not in {where} while "
                           "HF_HUB_OFFLINE=1: download it once online (unset HF_HUB_OFFLINE) or pass a local "
                           "directory") from e
        raise HubError(f"cannot download {str(hub_id)!r} (no connection to the hub?) and it is not in {where}: "
                       f"{e}") from e
    except hf_errors.HfHubHTTPError as e:
        raise HubError(f"downloading {str(hub_id)!r} failed: {e}") from e
    if not os.path.isfile(os.path.join(path, "config.json")) and not os.path.isfile(
        os.path.join(path, "tokenizer.json")
    ):
        raise HubError(f"hub snapshot {str(hub_id)!r} ({path}) has no config.json or tokenizer.json: not a "
                       "transformers checkpoint (GGUF repos: download the .gguf file and pass its path)")
    return path


def _jax_barrier(name: str) -> None:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def _process() -> tuple[int, int]:
    import jax

    return jax.process_index(), jax.process_count()


def fetch_on_process_zero(
    hub_id: HubId,
    *,
    download: Callable[..., str] = download_snapshot,
    process: tuple[int, int] | None = None,
    barrier: Callable[[str], None] = _jax_barrier,
) -> str:
    """Multi-host download: process 0 downloads, every process meets at ``barrier``, then the others read the
    snapshot from the cache (``local_files_only``), downloading it themselves only when their cache is host-local.

    Process 0 reaches the barrier even when its download fails, so the others never hang; the failure is raised on
    every process. ``download``/``process``/``barrier`` are injectable for tests."""
    index, count = process if process is not None else _process()
    if count <= 1:
        return download(hub_id)
    name = f"s1jax_hub_{hub_id}"
    if index == 0:
        error: BaseException | None = None
        path = ""
        try:
            path = download(hub_id)
        except Exception as e:  # noqa: BLE001 - re-raised after the barrier
            error = e
        barrier(name)
        if error is not None:
            raise error
        return path
    barrier(name)
    try:
        return download(hub_id, local_files_only=True)
    except HubError:
        if _offline():
            raise
        return download(hub_id)  # host-local cache: this host needs its own copy


@functools.lru_cache(maxsize=64)
def _resolve_cached(hub_id: HubId, offline: bool, cache: str | None) -> str:  # noqa: ARG001 - cache keys
    return fetch_on_process_zero(hub_id)


def resolve_checkpoint(path: str | os.PathLike[str], *, what: str = "checkpoint") -> str:
    """A local path for ``path``: itself when it exists, the hub snapshot directory for a hub id, else
    FileNotFoundError (one line: neither a path nor a hub id)."""
    text = os.fspath(path)
    if not text:
        raise FileNotFoundError(f"empty {what} path")
    if os.path.exists(os.path.expanduser(text)):
        return os.path.expanduser(text)
    hub_id = parse_hub_id(text)
    if hub_id is None:
        raise FileNotFoundError(f"{what} {text!r} does not exist (and is not a hub id like org/name or "
                                "org/name@revision)")
    return _resolve_cached(hub_id, _offline(), _cache_dir())


def hub_ref(path: Any) -> str | None:
    """The hub id text when ``path`` is a non-existing path shaped like one (for messages/fingerprints), else None."""
    text = os.fspath(path) if path else ""
    if not text or os.path.exists(os.path.expanduser(text)):
        return None
    hub_id = parse_hub_id(text)
    return str(hub_id) if hub_id else None
