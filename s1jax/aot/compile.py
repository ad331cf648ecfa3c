"""``compile_for_target(cfg)``: build the config's real programs, compile them for its target, measure what fits.

The order is the contract: every check that needs no compiler (target name, mesh vs chip count, batch geometry,
model architecture, compiler installed) runs first and fails in one line; then each program is lowered on abstract
inputs and compiled by the target's own compiler (libtpu for TPU, the CUDA plugin for GPUs), and
``compiled.memory_analysis()`` gives the bytes one device needs. TPU compilation itself fails when a program
exceeds HBM (``RESOURCE_EXHAUSTED``); that failure is caught and reported with the bytes the compiler names. GPU
compilation does not check memory, so the peak is compared with the usable HBM here.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Callable

from s1jax.aot import analytic
from s1jax.aot.programs import (
    inference_programs,
    largest_power_of_two_at_most,
    model_config_for,
    train_programs,
    validate_inference,
    validate_train,
)
from s1jax.aot.targets import Target, TargetError, parse_target
from s1jax.aot.topology import INSTALL_HINT, BackendMissing, backend_available, mesh_sizes, target_mesh
from s1jax.model.params import param_shapes

__all__ = ["ProgramResult", "CompileReport", "DoesNotFit", "compile_for_target", "config_kind", "check_config",
           "DEFAULT_MFU", "PAPER_RUN_MINUTES"]

DEFAULT_MFU = 0.4
PAPER_RUN_MINUTES = 26.0  # s1 paper: s1-32B SFT on 16 H100 in 26 minutes


class DoesNotFit(RuntimeError):
    """A program needs more device memory than the target has; the message names the program, the bytes, and the
    knobs that would help."""


@dataclasses.dataclass
class ProgramResult:
    name: str
    shape: str
    fits: bool
    available_bytes: int
    compile_s: float
    flops: float
    calls: int
    analytic_arg_bytes: int  # exact per-device bytes of the arguments (params + optimizer state + batch ...)
    argument_bytes: int = 0
    output_bytes: int = 0
    alias_bytes: int = 0
    temp_bytes: int = 0
    code_bytes: int = 0
    peak_bytes: int = 0  # what one device needs at once
    step_s: float | None = None  # predicted time of one call
    error: str = ""  # the compiler's out-of-memory message
    knobs: tuple[str, ...] = ()
    timing: str = "compute"
    notes: tuple[str, ...] = ()

    @property
    def headroom(self) -> float:
        return 100.0 * (self.available_bytes - self.peak_bytes) / self.available_bytes

    @property
    def run_s(self) -> float | None:
        return None if self.step_s is None else self.step_s * self.calls


@dataclasses.dataclass
class CompileReport:
    config_name: str
    kind: str  # "train" | "inference"
    target: Target
    mesh: dict[str, int]
    model: str  # where the architecture came from
    mfu: float
    programs: list[ProgramResult]
    batch_search: list[tuple[int, bool]] = dataclasses.field(default_factory=list)  # (rows, fits) tried
    rows: int = 0  # inference: the batch compiled

    @property
    def fits(self) -> bool:
        return bool(self.programs) and all(p.fits for p in self.programs)


def config_kind(cfg: Any) -> str:
    """"train" for a training config (train + data groups), "inference" for a generate/eval-style config with a
    batch and a cache length."""
    if "train" in cfg and "data" in cfg:
        return "train"
    if "max_cache_len" in cfg and "batch_size" in cfg and "prompt_len" in cfg:
        return "inference"
    raise ValueError("this config describes neither a training run (train + data groups) nor an inference batch "
                     "(batch_size, prompt_len, max_cache_len); use configs/train/*.py or configs/aot/*.py")


def check_config(cfg: Any) -> tuple[str, Target, tuple[int, int, int]]:
    """Everything that can be checked without a compiler: (kind, target, mesh sizes). Raises with one line."""
    kind = config_kind(cfg)
    if "target" not in cfg:
        raise TargetError("the config has no `target` field; add cfg.target (e.g. 'v5p-128') or use a shipped config")
    target = parse_target(cfg.target)
    if "mesh" not in cfg:
        raise TargetError("the config has no `mesh` group (data, fsdp, tensor)")
    sizes = mesh_sizes(cfg.mesh, target)
    if target.platform == "tpu" and cfg.model.get("attention_impl", "") == "cudnn":
        raise ValueError(f"model.attention_impl='cudnn' is an NVIDIA kernel and {target.name} is a TPU; "
                         "set --config.model.attention_impl=chunked")
    if kind == "train":
        validate_train(cfg, sizes)
    else:
        validate_inference(cfg)
    mfu = _mfu(cfg)
    if not 0.0 < mfu <= 1.0:
        raise ValueError(f"aot.mfu must be in (0, 1], got {mfu}")
    return kind, target, sizes


def _mfu(cfg: Any) -> float:
    aot = cfg.get("aot", None)
    return float(aot.get("mfu", DEFAULT_MFU)) if aot is not None else DEFAULT_MFU


_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _bytes(number: str, unit: str) -> int:
    return int(float(number) * _UNITS[unit.upper().rstrip("IB") if unit.upper() not in ("B", "") else ""])


def parse_oom(message: str) -> tuple[int | None, int | None]:
    """(bytes needed, bytes available) from an XLA out-of-memory message, when it names them."""
    m = re.search(r"[Uu]sed\s+([\d.]+)([KMGT]?)\s+of\s+([\d.]+)([KMGT]?)\s+hbm", message)
    if m:
        return _bytes(m.group(1), m.group(2)), _bytes(m.group(3), m.group(4))
    # libtpu: "the total memory required for HLO temporaries (524.62G) exceeds available HBM (15.75G)"
    m = re.search(r"([\d.]+)([KMGT])i?B?\)?\s+(?:of|exceeds)\D*([\d.]+)([KMGT])", message)
    if m:
        return _bytes(m.group(1), m.group(2)), _bytes(m.group(3), m.group(4))
    return None, None


def _is_oom(err: Exception) -> bool:
    text = str(err)
    return "RESOURCE_EXHAUSTED" in text or "exceeds available" in text.lower() or "out of memory" in text.lower()


def _predicted_step_s(program: Any, result: ProgramResult, target: Target, mfu: float) -> float:
    if program.timing == "memory":  # decode: every step reads the weights and the cache once
        return result.analytic_arg_bytes / target.chip.hbm_bandwidth
    return program.flops / (target.num_devices * target.chip.peak_flops * mfu)


def compile_program(program: Any, target: Target, mfu: float, done: dict[str, Any],
                    log: Callable[[str], None]) -> ProgramResult:
    """Lower + compile one program; record memory, compile time and predicted time; catch the compiler's OOM."""
    args = program.args(done) if callable(program.args) else program.args
    available = target.chip.usable_bytes
    result = ProgramResult(program.name, program.shape, False, available, 0.0, program.flops, program.calls,
                           analytic.per_device_bytes(args), knobs=program.knobs, timing=program.timing,
                           notes=program.notes)
    t0 = time.perf_counter()
    try:
        lowered = program.fn.lower(*args, **program.kwargs)
        compiled = lowered.compile()
    except Exception as e:  # noqa: BLE001 - only out-of-memory is a result; anything else propagates
        if not _is_oom(e):
            raise
        result.compile_s = time.perf_counter() - t0
        needed, avail = parse_oom(str(e))
        result.peak_bytes = needed or 0
        if avail:
            result.available_bytes = avail
        result.error = str(e).strip().splitlines()[0][:400]
        log(f"  {program.name}: does not fit ({result.compile_s:.1f} s)")
        return result
    result.compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    result.argument_bytes = int(mem.argument_size_in_bytes)
    result.output_bytes = int(mem.output_size_in_bytes)
    result.alias_bytes = int(mem.alias_size_in_bytes)
    result.temp_bytes = int(mem.temp_size_in_bytes)
    result.code_bytes = int(getattr(mem, "generated_code_size_in_bytes", 0) or 0)
    peak = int(getattr(mem, "peak_memory_in_bytes", 0) or 0)
    # donated (aliased) outputs live in their argument's buffer
    total = result.argument_bytes + result.output_bytes - result.alias_bytes + result.temp_bytes
    result.peak_bytes = max(peak, total)
    result.fits = result.peak_bytes <= available
    result.step_s = _predicted_step_s(program, result, target, mfu)
    done[program.name] = (lowered, compiled)
    log(f"  {program.name}: compiled in {result.compile_s:.1f} s, {result.peak_bytes / 2**30:.2f} GiB per device")
    return result


def _compile_all(programs: list[Any], target: Target, mfu: float, log: Callable[[str], None]) -> list[ProgramResult]:
    done: dict[str, Any] = {}
    results = []
    for program in programs:
        if results and not results[-1].fits and callable(program.args):
            break  # its inputs are the previous program's outputs
        results.append(compile_program(program, target, mfu, done, log))
    return results


def _search_rows(build: Callable[[int], list[Any]], target: Target, mfu: float, start: int, limit: int,
                 log: Callable[[str], None]) -> tuple[int, list[ProgramResult], list[tuple[int, bool]]]:
    """The largest power-of-two batch whose programs all fit: from ``start`` double until one does not fit, or halve
    until one does. Returns (rows, results at rows, every (rows, fits) tried)."""
    tried: list[tuple[int, bool]] = []
    results: dict[int, list[ProgramResult]] = {}

    def attempt(rows: int) -> bool:
        log(f"batch {rows}:")
        programs = build(rows)
        res = _compile_all(programs, target, mfu, log)
        ok = len(res) == len(programs) and all(r.fits for r in res)
        results[rows] = res
        tried.append((rows, ok))
        return ok

    rows = max(1, min(start, limit))
    if attempt(rows):
        while rows * 2 <= limit and attempt(rows * 2):
            rows *= 2
    else:
        while rows > 1:
            rows //= 2
            if attempt(rows):
                break
        else:
            return rows, results[rows], tried
    return rows, results[rows], tried


def compile_for_target(cfg: Any, config_name: str = "", log: Callable[[str], None] = print) -> CompileReport:
    """Compile the programs ``cfg`` describes for ``cfg.target``; see the module docstring. Raises ValueError /
    TargetError on a bad config and BackendMissing when the target's compiler is not installed, before compiling."""
    kind, target, _ = check_config(cfg)
    config, model_source = model_config_for(cfg.model)
    if not backend_available(target.platform):
        what = "libtpu" if target.platform == "tpu" else "the JAX CUDA plugin"
        raise BackendMissing(f"compiling for {target.name} needs {what}; {INSTALL_HINT}")
    mfu = _mfu(cfg)
    mesh = target_mesh(cfg.mesh, target)
    log(f"{config_name or kind}: {target.describe()}, mesh {dict(mesh.shape)}, model {model_source}")
    report = CompileReport(config_name, kind, target, dict(mesh.shape), model_source, mfu, [])
    if kind == "train":
        report.programs = _compile_all(train_programs(cfg, mesh, config), target, mfu, log)
        return report
    rows, _, cache = validate_inference(cfg)
    if rows:
        report.rows = rows
        report.programs = _compile_all(inference_programs(cfg, mesh, config, rows), target, mfu, log)
        return report
    # batch_size 0: the largest power of two that fits, starting from the analytic estimate
    param_bytes = analytic.per_device_bytes(param_shapes(config, cfg.model.param_dtype or cfg.model.dtype))
    tensor = report.mesh["tensor"] if config.num_kv_heads % report.mesh["tensor"] == 0 else 1
    itemsize = 2 if str(cfg.model.dtype) == "bfloat16" else 4
    per_row = analytic.kv_cache_bytes(config, 1, cache, itemsize) / tensor
    free = target.chip.usable_bytes - param_bytes / max(report.mesh["tensor"] * report.mesh["fsdp"], 1)
    start = largest_power_of_two_at_most(max(free, per_row) / per_row)
    limit = int(cfg.get("aot", {}).get("max_batch", 1024) or 1024)
    rows, results, tried = _search_rows(lambda r: inference_programs(cfg, mesh, config, r), target, mfu, start,
                                        limit, log)
    report.rows, report.programs, report.batch_search = rows, results, tried
    return report
