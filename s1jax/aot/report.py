"""Printing a CompileReport: the terminal table, the "does not fit" message, and docs/scale.md rows."""

from __future__ import annotations

from s1jax.aot.compile import PAPER_RUN_MINUTES, CompileReport, ProgramResult

__all__ = ["gib", "format_report", "does_not_fit_message", "markdown_rows", "MARKDOWN_HEADER", "duration"]

MARKDOWN_HEADER = (
    "| config | target | mesh (data, fsdp, tensor) | program | shape | peak / usable HBM per device | headroom "
    "| args + temps per device (peak adds outputs not donated) | compile | FLOPs per call | predicted |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _mesh(report: CompileReport) -> str:
    m = report.mesh
    return f"{m.get('data', 1)}, {m.get('fsdp', 1)}, {m.get('tensor', 1)}"


def _prediction(report: CompileReport, p: ProgramResult) -> str:
    if p.step_s is None:
        return "-"
    if p.timing == "memory":
        return (f"{duration(p.step_s)} per step (HBM-bound: weights + cache read once per step), "
                f"up to {p.calls} steps = {duration(p.run_s)}")
    if p.calls > 1:
        return (f"{duration(p.step_s)} per step at {report.mfu:.0%} MFU, {p.calls} steps = {duration(p.run_s)}")
    return f"{duration(p.step_s)} at {report.mfu:.0%} MFU"


def format_report(report: CompileReport) -> str:
    """The per-program table and the predictions, as printed by ``s1jax compile``."""
    t = report.target
    lines = [
        f"target: {t.describe()}; {gib(t.chip.hbm_bytes)} HBM per device, {gib(t.chip.usable_bytes)} usable"
        + ("" if t.platform == "tpu" else f" (XLA_PYTHON_CLIENT_MEM_FRACTION={t.chip.usable_fraction})")
        + f", {t.chip.peak_flops / 1e12:.0f} TFLOP/s bf16 peak",
        f"mesh: data={report.mesh.get('data')} fsdp={report.mesh.get('fsdp')} tensor={report.mesh.get('tensor')}; "
        f"model: {report.model}",
    ]
    if report.batch_search:
        tried = ", ".join(f"{rows} {'fits' if ok else 'does not fit'}" for rows, ok in report.batch_search)
        lines.append(f"largest batch that fits: {report.rows} (tried {tried})")
    head = f"{'program':<11} {'args':>10} {'outputs':>10} {'temps':>10} {'peak':>10} {'usable':>10} {'headroom':>9} " \
           f"{'compile':>8}"
    lines += ["", head, "-" * len(head)]
    for p in report.programs:
        if p.error:
            need = gib(p.peak_bytes) if p.peak_bytes else "?"
            lines.append(f"{p.name:<11} {'-':>10} {'-':>10} {'-':>10} {need:>10} {gib(p.available_bytes):>10} "
                         f"{'OOM':>9} {p.compile_s:>7.1f}s")
            continue
        lines.append(
            f"{p.name:<11} {gib(p.argument_bytes):>10} {gib(p.output_bytes):>10} {gib(p.temp_bytes):>10} "
            f"{gib(p.peak_bytes):>10} {gib(p.available_bytes):>10} {p.headroom:>8.1f}% {p.compile_s:>7.1f}s")
    lines.append("")
    for p in report.programs:
        lines.append(f"{p.name}: {p.shape}; {p.flops:.3g} FLOPs per call (analytic); "
                     f"params/state/inputs {gib(p.analytic_arg_bytes)} per device (analytic); {_prediction(report, p)}")
        lines += [f"  note: {note}" for note in p.notes]
    if report.kind == "train" and report.programs:
        lines.append(f"reference: the s1 paper trains s1-32B in {PAPER_RUN_MINUTES:.0f} min on 16 H100; predictions "
                     "here pad every step to the full block (s1K traces are mostly shorter), so they bound it above")
    return "\n".join(lines)


def does_not_fit_message(report: CompileReport) -> str:
    """One paragraph per program that does not fit: bytes needed and available, the compiler's words, the knobs."""
    out = []
    for p in report.programs:
        if p.fits:
            continue
        need = f"{gib(p.peak_bytes)} per device" if p.peak_bytes else "more memory per device than it has"
        if p.error and p.peak_bytes:
            need += " (at least: the compiler stops counting at the first memory space that overflows)"
        msg = (f"{p.name} ({p.shape}) does not fit {report.target.name}: needs {need}, "
               f"{gib(p.available_bytes)} available")
        if p.error:
            msg += f"\n  compiler: {p.error}"
        msg += "\n  knobs that reduce memory: " + "; ".join(p.knobs)
        out.append(msg)
    if not report.programs:
        out.append("no program was compiled")
    return "\n".join(out)


def markdown_rows(report: CompileReport, config_label: str) -> list[str]:
    """One docs/scale.md table row per program."""
    rows = []
    for p in report.programs:
        peak = f"{gib(p.peak_bytes) if p.peak_bytes else '?'} / {gib(p.available_bytes)}"
        headroom = "**does not fit**" if not p.fits else f"{p.headroom:.1f} %"
        if p.error:
            args_temps = "compiler OOM"
        else:
            args_temps = f"{gib(p.argument_bytes)} + {gib(p.temp_bytes)}"
        rows.append(f"| {config_label} | {report.target.name} | {_mesh(report)} | {p.name} | {p.shape} | {peak} | "
                    f"{headroom} | {args_temps} | {p.compile_s:.0f} s | {p.flops:.3g} | {_prediction(report, p)} |")
    return rows
