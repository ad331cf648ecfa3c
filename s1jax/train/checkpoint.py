"""Orbax checkpoints of the train state, restorable bit-for-bit, and readable by ``s1jax.load_model(<dir>)``.

Layout of a checkpoint directory (the CheckpointManager root)::

    <root>/s1jax_model.json        dataclasses.asdict(ModelConfig) + {"param_dtype": "float32", "format": "s1jax", "version": 1}
    <root>/tokenizer.json          the training tokenizer (copied from a HF dir with tokenizer_config.json,
                                   special_tokens_map.json, generation_config.json when present; written from the
                                   loaded tokenizer for a GGUF; tokenizer.model instead for SentencePiece)
    <root>/s1jax_tokenizer.json    its chat format (family, system message, ...) and eos/pad/bos ids, so
                                   ``s1jax.load_tokenizer(<root>)`` restores exactly the tokenizer trained with
    <root>/<step>/params/          Orbax StandardSave (OCDBT) of the params pytree (same tree as Model.params)
    <root>/<step>/opt_state/       Orbax StandardSave of the optax state
    <root>/<step>/meta/            Orbax JsonSave: {"step", "data", "rng", "seed", "total_steps", "fingerprint",
                                   "integrity": {per-array checksums of params and opt_state, meta digest}}
    <root>/set_aside/<step>.<time> step directories not used on resume (failed verification, or newer than the
                                   step resumed from); moved, never deleted

``<step>`` is the number of completed optimizer steps (a plain integer directory name). Orbax writes into a
temporary name and renames when finished, so a crash mid-write leaves no step directory; but a step directory can
still be bad (a truncated or bit-flipped file, a stray empty directory), so a checkpoint is trusted only when its
arrays' checksums match the ones saved with it (``TrainCheckpointer.restore_verified``), else the previous step is
used.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from s1jax.model.config import ModelConfig
from s1jax.train import integrity
from s1jax.train.errors import NoUsableCheckpointError, StorageError
from s1jax.model.io.common import MODEL_JSON
from s1jax.model.io.native import model_json_payload
from s1jax.tokenizer import SAVED_TOKENIZER_META as TOKENIZER_META  # read by s1jax.tokenizer.load_tokenizer

__all__ = ["MODEL_JSON", "Restored", "TrainCheckpointer", "write_model_json", "write_tokenizer"]

HF_TOKENIZER_SIDECARS = ("tokenizer_config.json", "special_tokens_map.json", "generation_config.json")


def is_remote(path: str) -> bool:
    return "://" in str(path)


def write_model_json(root: str, config: ModelConfig, param_dtype: Any) -> str:
    """``<root>/s1jax_model.json``: the architecture + storage dtype, so the params item can be read standalone.
    ``root`` may be local or a ``gs://`` path."""
    from etils import epath

    directory = epath.Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    payload = model_json_payload(config, param_dtype)
    (directory / MODEL_JSON).write_text(json.dumps(payload, indent=2, sort_keys=True))
    return str(directory / MODEL_JSON)


def write_tokenizer(root: str, tok: Any) -> list[str]:
    """Save the s1jax ``Tokenizer`` ``tok`` into ``root`` (local or ``gs://``) so ``load_tokenizer(root)`` gives it
    back; returns the file names written.

    From a HF ``tokenizer.json``: that file and its sidecars are copied. Otherwise the backend's
    ``tokenizers.Tokenizer`` (a GGUF vocabulary) is serialised as ``tokenizer.json``, or a SentencePiece file is
    copied as ``tokenizer.model``. ``s1jax_tokenizer.json`` always records the chat format and the special ids,
    which the copied files alone may not determine (the family can come from a config.json or GGUF metadata)."""
    from etils import epath

    directory = epath.Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def put(name: str, data: bytes) -> None:
        (directory / name).write_bytes(data)
        written.append(name)

    source = epath.Path(tok.source) if getattr(tok, "source", "") else None
    backend = getattr(tok, "_backend", None)
    hf = getattr(backend, "tok", None)
    if source is not None and source.name.endswith(".json") and source.is_file():
        same = str(source.parent).rstrip("/") == str(directory).rstrip("/")
        if not same:
            put("tokenizer.json", source.read_bytes())
            for name in HF_TOKENIZER_SIDECARS:
                if (source.parent / name).is_file():
                    put(name, (source.parent / name).read_bytes())
    elif hf is not None and hasattr(hf, "to_str"):
        put("tokenizer.json", hf.to_str().encode("utf-8"))
    elif getattr(backend, "sp", None) is not None and source is not None and source.is_file():
        if str(source) != str(directory / "tokenizer.model"):
            put("tokenizer.model", source.read_bytes())
    else:
        raise ValueError(f"cannot save tokenizer {tok!r}: no tokenizer.json source and no serialisable backend")
    meta = {
        "format": "s1jax_tokenizer", "version": 1, "source": str(getattr(tok, "source", "")),
        "chat": dataclasses.asdict(tok.chat),
        "eos_token_ids": [int(i) for i in tok.eos_token_ids],
        "pad_token_id": None if tok.pad_token_id is None else int(tok.pad_token_id),
        "bos_token_id": None if tok.bos_token_id is None else int(tok.bos_token_id),
    }
    put(TOKENIZER_META, json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))
    return written


def has_tokenizer(root: str) -> bool:
    from etils import epath

    return (epath.Path(root) / TOKENIZER_META).exists()


def _read_model_json(root: str) -> dict:
    from etils import epath

    path = epath.Path(root) / MODEL_JSON
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise StorageError(f"{path} is corrupted ({e}); rewrite it from the run's model config or start a new run") from e
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise FileNotFoundError(f"{path} is missing: {root} is not an s1jax checkpoint directory") from e
        raise StorageError(f"cannot read {path}: {_one_line(e)}") from e
    if not isinstance(meta, dict):
        raise StorageError(f"{path} is corrupted (not a JSON object)")
    return meta


def read_model_config(root: str) -> ModelConfig:
    """The ModelConfig stored in ``<root>/s1jax_model.json`` (extra keys such as param_dtype are ignored)."""
    meta = _read_model_json(root)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in meta.items() if k in fields})


def read_param_dtype(root: str) -> str | None:
    """The storage dtype recorded in ``<root>/s1jax_model.json`` ("float32"), None if not recorded."""
    return _read_model_json(root).get("param_dtype")


def _abstract(tree: Any, shardings: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


def _one_line(e: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (Orbax/TensorStore messages run to many lines)."""
    text = str(e).strip().splitlines()
    first = (text[0] if text else "").split(". See full TensorStore details")[0]
    return f"{type(e).__name__}: {first[:limit]}"


def _all_processes_agree(ok: bool) -> bool:
    """True iff ``ok`` on every process (a checkpoint is used only if every host could read and verify it)."""
    if jax.process_count() == 1:
        return ok
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.array([ok]))))


@dataclasses.dataclass
class Restored:
    """A verified checkpoint: its step, the train state (``params``, ``opt_state``) and its meta item."""

    step: int
    state: dict
    meta: dict
    verified: bool  # False only for checkpoints written before checksums existed
    set_aside: list[str]  # step directories moved out of the way (bad, or newer than the resumed step)


class TrainCheckpointer:
    """Save every ``save_every`` steps (and on demand), keep the newest ``keep``, optionally async; restore only
    checkpoints that verify.

    Every save stores per-array checksums and a digest of the meta item (``s1jax.train.integrity``) inside the meta
    item. Failures never pass silently: a failed synchronous save raises ``StorageError`` at once; a failed
    asynchronous save raises it from the next ``check()`` (call it every step) or ``save()``; an asynchronous save
    that has not committed within ``timeout_s`` fails the same way.
    """

    ITEMS = ("params", "opt_state", "meta")
    SET_ASIDE = "set_aside"  # <root>/set_aside/<step>.<time>: step directories that were not used (never deleted)

    def __init__(self, root: str, *, save_every: int = 100, keep: int = 2, async_save: bool = True,
                 timeout_s: int = 1200) -> None:
        self.root = root if is_remote(root) else os.path.abspath(root)
        self.save_every = max(int(save_every), 1)
        self.async_save = bool(async_save)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep if keep and keep > 0 else None,
            save_interval_steps=1,  # the interval is decided in save(): Orbax would also save the very first step
            enable_async_checkpointing=self.async_save,
            async_options=ocp.AsyncOptions(timeout_secs=max(int(timeout_s), 1)),
            create=True,
        )
        try:
            self.manager = ocp.CheckpointManager(self.root, options=options, item_names=self.ITEMS)
        except OSError as e:
            raise StorageError(f"cannot open the checkpoint directory {self.root}: {_one_line(e)}") from e
        self._pending: int | None = None  # step of the asynchronous save in flight

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(int(s) for s in self.manager.all_steps())

    def step_dir(self, step: int) -> str:
        return f"{self.root}/{int(step)}"

    # ------------------------------------------------------------------------------------------------ saving

    def save(self, step: int, state: dict, meta: dict, *, force: bool = False) -> bool:
        """Save if ``step`` is on the interval (or ``force``); returns whether a save started. Checksums of the
        arrays are computed on the devices before the (possibly asynchronous) write starts."""
        if not force and step % self.save_every:
            return False
        self.check()
        arrays = {"params": state["params"], "opt_state": state["opt_state"]}
        record = {"algorithm": integrity.ALGORITHM, "arrays": integrity.tree_checksums(arrays)}  # one jitted pass
        meta = {k: v for k, v in meta.items() if k != integrity.INTEGRITY_KEY}
        record["meta_sha256"] = integrity.meta_digest(meta)
        meta[integrity.INTEGRITY_KEY] = record
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(state["params"]),
            opt_state=ocp.args.StandardSave(state["opt_state"]),
            meta=ocp.args.JsonSave(meta),
        )
        try:
            started = bool(self.manager.save(int(step), args=args, force=True))
        except Exception as e:  # noqa: BLE001 - any failure to write a checkpoint is a storage failure
            raise StorageError(f"checkpoint save of step {step} to {self.step_dir(step)} failed: {_one_line(e)}") from e
        if started and self.async_save:
            self._pending = int(step)
        return started

    def check(self) -> None:
        """Raise ``StorageError`` if an asynchronous save has failed (or timed out); never blocks on a save that is
        still running."""
        if self._pending is None or self.manager.is_saving_in_progress():
            return
        step, self._pending = self._pending, None
        try:
            self.manager.wait_until_finished()  # the save has ended: returns at once, raising its error if any
        except Exception as e:  # noqa: BLE001
            raise StorageError(f"asynchronous checkpoint save of step {step} to {self.step_dir(step)} failed: "
                               f"{_one_line(e)}") from e

    def wait(self) -> None:
        """Block until the save in flight has committed; ``StorageError`` if it failed. (A failure ``check()``
        already raised is not raised again.)"""
        step, self._pending = self._pending, None
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001
            if step is None:
                return
            raise StorageError(f"checkpoint save of step {step} to {self.step_dir(step)} failed: {_one_line(e)}") from e

    def close(self) -> None:
        """Wait for the save in flight (bounded by ``timeout_s``) and release Orbax's threads."""
        try:
            self.wait()
        finally:
            try:
                self.manager.close()
            except Exception:  # noqa: BLE001 - the save error (if any) was raised by wait()
                pass

    # ------------------------------------------------------------------------------------------------ restoring

    def restore(self, step: int, abstract_state: dict, shardings: dict) -> tuple[dict, dict]:
        """(state with ``params``/``opt_state`` placed in ``shardings``, meta dict) of checkpoint ``step``, unverified."""
        args = ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(abstract_state["params"], shardings["params"])),
            opt_state=ocp.args.StandardRestore(_abstract(abstract_state["opt_state"], shardings["opt_state"])),
            meta=ocp.args.JsonRestore(),
        )
        out = self.manager.restore(int(step), args=args)
        return {"params": out["params"], "opt_state": out["opt_state"]}, dict(out["meta"])

    def _read_meta(self, step: int) -> dict:
        from etils import epath

        step_dir = epath.Path(self.step_dir(step))
        missing = [item for item in self.ITEMS if not (step_dir / item).is_dir()]
        if missing:
            raise ValueError(f"incomplete: no {', '.join(missing)} item")
        try:
            out = self.manager.restore(int(step), args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"meta item unreadable ({_one_line(e)})") from e
        meta = out["meta"]
        if not isinstance(meta, dict):
            raise ValueError(f"meta item holds {type(meta).__name__}, not a JSON object")
        record = meta.get(integrity.INTEGRITY_KEY)
        if record is not None and not isinstance(record, dict):
            raise ValueError("meta item holds a malformed integrity record")
        if record is not None and record.get("meta_sha256") != integrity.meta_digest(meta):
            raise ValueError("meta item does not match its digest (corrupted)")
        return dict(meta)

    def _restore_arrays(self, step: int, meta: dict, abstract_state: dict, shardings: dict) -> dict:
        args = ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(abstract_state["params"], shardings["params"])),
            opt_state=ocp.args.StandardRestore(_abstract(abstract_state["opt_state"], shardings["opt_state"])),
        )
        try:
            out = self.manager.restore(int(step), args=args)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"arrays unreadable ({_one_line(e)})") from e
        state = {"params": out["params"], "opt_state": out["opt_state"]}
        record = meta.get(integrity.INTEGRITY_KEY)
        if record is not None:
            expected = record.get("arrays") if isinstance(record, dict) else None
            if record.get("algorithm") != integrity.ALGORITHM or not isinstance(expected, dict):
                raise ValueError(f"integrity record not understood (algorithm {record.get('algorithm')!r})")
            bad = integrity.mismatches(expected, integrity.tree_checksums(state))
            if bad:
                raise ValueError(f"checksum mismatch in {len(bad)} array(s): {', '.join(bad[:3])}"
                                 + (", ..." if len(bad) > 3 else ""))
        return state

    def restore_verified(
        self,
        abstract_state: dict,
        shardings: dict,
        *,
        resume_step: int = 0,
        check_meta: Callable[[int, dict], None] | None = None,
        log: Callable[[str], None] = print,
    ) -> Restored | None:
        """The newest checkpoint that restores and verifies (or exactly ``resume_step`` when > 0); None when the
        directory holds no step at all.

        A step that fails (missing item, unreadable or corrupted meta, unreadable arrays, checksum mismatch) is
        reported in one warning line naming the step and the reason, moved to ``<root>/set_aside/`` and the next
        older step is tried; so are steps newer than the one resumed (they would collide with the steps the resumed
        run saves). ``check_meta(step, meta)`` runs before any array is read; its exceptions (a changed run) propagate.
        Raises ``NoUsableCheckpointError`` when steps exist but none is usable."""
        steps = self.all_steps()
        if not steps:
            return None
        if resume_step and resume_step > 0:
            if resume_step not in steps:
                raise NoUsableCheckpointError(
                    f"train.resume_step={resume_step}: no such checkpoint in {self.root} (steps: {steps})")
            candidates = [resume_step]
        else:
            candidates = sorted(steps, reverse=True)
        failures: list[str] = []
        failed_steps: list[int] = []
        for step in candidates:
            try:
                meta = self._read_meta(step)
                ok = True
            except ValueError as e:
                meta, ok, reason = {}, False, str(e)
            if _all_processes_agree(ok) and check_meta is not None:
                check_meta(step, meta)
            if _all_processes_agree(ok):
                try:
                    state = self._restore_arrays(step, meta, abstract_state, shardings)
                except ValueError as e:
                    ok, reason = False, str(e)
            if _all_processes_agree(ok):
                verified = integrity.INTEGRITY_KEY in meta
                if not verified:
                    log(f"warning: checkpoint {self.step_dir(step)} has no checksums (written by an older s1jax): "
                        "restored unverified")
                # Newer steps (bad ones, or good ones skipped by resume_step) would collide with the steps this run
                # saves: move them aside, only now that a usable step is certain.
                newer = [s for s in steps if s > step]
                moved = [self._set_aside(s) for s in newer]
                skipped = [s for s in newer if s not in failed_steps]
                if skipped:
                    log(f"warning: resuming from step {step}: moved the newer step(s) {skipped} to "
                        f"{self.root}/{self.SET_ASIDE}/ (kept, not deleted)")
                return Restored(step, state, meta, verified, moved)
            reason = reason if not ok else "another process could not read or verify it"
            failures.append(f"step {step}: {reason}")
            failed_steps.append(step)
            if resume_step and resume_step > 0:
                break
            log(f"warning: checkpoint {self.step_dir(step)} is unusable ({reason}); trying the previous one "
                f"(this one goes to {self.SET_ASIDE}/ once a previous one restores)")
        raise NoUsableCheckpointError(
            f"no usable checkpoint in {self.root}: {'; '.join(failures)}. Pick another one with "
            "--config.train.resume_step=N, or move the checkpoints away to start over"
        )

    def _set_aside(self, step: int) -> str:
        """Move ``<root>/<step>`` to ``<root>/set_aside/<step>.<UTC time>`` (process 0; all wait) and forget it."""
        import time

        from etils import epath

        target = epath.Path(self.root) / self.SET_ASIDE / f"{int(step)}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        if jax.process_index() == 0:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                epath.Path(self.step_dir(step)).rename(target)
            except OSError as e:
                raise StorageError(f"cannot move the unusable checkpoint {self.step_dir(step)} aside: "
                                   f"{_one_line(e)}") from e
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"s1jax_set_aside_{step}")
        self.manager.reload()
        return str(target)
