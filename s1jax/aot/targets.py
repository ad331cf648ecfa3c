"""Accelerator targets for ahead-of-time compilation: TPU slices and NVIDIA GPU machines, by their usual names.

A target is a chip (HBM per device, dense bf16 peak FLOP/s, HBM bandwidth) times a device count, plus what JAX needs
to describe it without having it: a TPU topology string for ``jax.experimental.topologies.get_topology_desc`` (the
libtpu compiler then runs on this host) or a GPU target description (``specs/*.txtpb``, a ``GpuTargetConfigProto``)
for the CUDA plugin.

Names:

- TPU slices as Cloud TPU names them: ``v4-N`` and ``v5p-N`` count TensorCores (2 per chip: ``v5p-128`` is 64 chips),
  ``v5e-N`` (alias ``v5litepod-N``) and ``v6e-N`` count chips. An explicit topology also works: ``v5p:4x4x4``,
  ``v6e:2x4``. An optional ``tpu-`` prefix is accepted (``tpu-v5p-128``).
- GPUs: ``h100x8`` (one node), ``h100x16`` or ``2x8xh100`` (2 nodes of 8), likewise ``h200`` and ``a100``; an
  optional ``gpu-`` prefix is accepted.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

__all__ = ["Chip", "Target", "CHIPS", "TargetError", "parse_target", "known_targets", "EXAMPLE_TARGETS"]

GIB = 1024**3


class TargetError(ValueError):
    """A target name or topology that cannot be used; the message lists what can."""


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator device as JAX sees it (one TPU chip, one GPU)."""

    name: str  # "v5p", "h100"
    platform: str  # "tpu" | "cuda"
    hbm_bytes: int  # physical HBM per device
    peak_flops: float  # dense bf16 FLOP/s per device
    hbm_bandwidth: float  # bytes/s per device
    description: str
    topology_dims: int = 0  # TPU: 3 (torus: v4, v5p) or 2 (v5e, v6e)
    cores_per_chip_in_name: int = 1  # v4 / v5p slice names count TensorCores, two per chip
    spec_file: str = ""  # GPU: GpuTargetConfigProto text file in s1jax/aot/specs/
    # Share of HBM a program may use: TPU programs get all of it (the compiler checks); on GPUs XLA's allocator gets
    # XLA_PYTHON_CLIENT_MEM_FRACTION of it (0.95 in launch/*.sh), the rest is the CUDA context and cuDNN workspaces.
    usable_fraction: float = 1.0

    @property
    def usable_bytes(self) -> int:
        return int(self.hbm_bytes * self.usable_fraction)


GPU_MEM_FRACTION = 0.95  # launch/gpu_*.sh export XLA_PYTHON_CLIENT_MEM_FRACTION=0.95

CHIPS: dict[str, Chip] = {
    "v4": Chip("v4", "tpu", 32 * GIB, 275e12, 1.2e12, "TPU v4", topology_dims=3, cores_per_chip_in_name=2),
    "v5e": Chip("v5e", "tpu", 16 * GIB, 197e12, 8.19e11, "TPU v5e", topology_dims=2),
    "v5p": Chip("v5p", "tpu", 95 * GIB, 459e12, 2.765e12, "TPU v5p", topology_dims=3, cores_per_chip_in_name=2),
    "v6e": Chip("v6e", "tpu", 32 * GIB, 918e12, 1.64e12, "TPU v6e (Trillium)", topology_dims=2),
    # device_memory_size of the spec files (what the CUDA driver reports), not the marketing GB
    "h100": Chip("h100", "cuda", 84942979072, 989e12, 3.35e12, "NVIDIA H100 SXM 80GB", spec_file="h100_sxm.txtpb",
                 usable_fraction=GPU_MEM_FRACTION),
    "h200": Chip("h200", "cuda", 151397597184, 989e12, 4.8e12, "NVIDIA H200 141GB", spec_file="h200.txtpb",
                 usable_fraction=GPU_MEM_FRACTION),
    "a100": Chip("a100", "cuda", 85100068864, 312e12, 2.039e12, "NVIDIA A100 SXM 80GB", spec_file="a100_sxm_80.txtpb",
                 usable_fraction=GPU_MEM_FRACTION),
}

_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "trillium": "v6e"}

# Chip counts Cloud TPU offers as one slice, and the physical topology of each.
TPU_3D_SHAPES = {
    1: (1, 1, 1), 2: (1, 2, 1), 4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4), 64: (4, 4, 4),
    128: (4, 4, 8), 256: (4, 8, 8), 512: (8, 8, 8), 1024: (8, 8, 16), 2048: (8, 16, 16), 4096: (16, 16, 16),
}
TPU_2D_SHAPES = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16), 256: (16, 16)}
GPUS_PER_NODE = 8

EXAMPLE_TARGETS = ("v4-32", "v5e-16", "v5p-8", "v5p-128", "v6e-8", "v6e-256", "v5p:4x4x4",
                   "h100x1", "h100x8", "h100x16", "2x8xh100", "h200x8", "a100x8")


@dataclasses.dataclass(frozen=True)
class Target:
    """``num_devices`` x ``chip``, arranged as ``topology`` (TPU chips) or ``nodes`` x ``per_node`` (GPUs)."""

    name: str  # canonical: "v5p-128", "h100x16"
    chip: Chip
    num_devices: int
    topology: tuple[int, ...] = ()  # TPU physical shape in chips
    nodes: int = 1  # GPU nodes (hosts)

    @property
    def platform(self) -> str:
        return self.chip.platform

    @property
    def topology_name(self) -> str:
        """The string ``get_topology_desc`` takes: ``v5p:4x4x4`` (TPU) or ``1x2x8`` (GPU: slices x hosts x devices)."""
        if self.platform == "tpu":
            return f"{self.chip.name}:{'x'.join(map(str, self.topology))}"
        return f"1x{self.nodes}x{self.num_devices // self.nodes}"

    @property
    def spec_path(self) -> str:
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), "specs", self.chip.spec_file)

    def describe(self) -> str:
        if self.platform == "tpu":
            return f"{self.name} ({self.num_devices} {self.chip.description} chips, {self.topology_name})"
        per = self.num_devices // self.nodes
        layout = f"{self.nodes} x {per}" if self.nodes > 1 else f"{per}"
        return f"{self.name} ({layout} {self.chip.description})"


def known_targets() -> str:
    """One line naming the target forms, for error messages."""
    tpus = ", ".join(f"{c}-N" for c in ("v4", "v5e", "v5p", "v6e"))
    gpus = ", ".join(f"{c}xN" for c, chip in CHIPS.items() if chip.platform == "cuda")
    return (f"TPU slices {tpus} (v4/v5p count TensorCores: v5p-128 = 64 chips) or a topology like v5p:4x4x4; "
            f"GPUs {gpus} (N = 1, 2, 4, 8 or a multiple of 8 = nodes of 8) or NODESx8xGPU; e.g. "
            + ", ".join(EXAMPLE_TARGETS))


def _tpu_from_chips(gen: str, chips: int, name: str) -> Target:
    chip = CHIPS[gen]
    shapes = TPU_3D_SHAPES if chip.topology_dims == 3 else TPU_2D_SHAPES
    if chips not in shapes:
        per = chip.cores_per_chip_in_name
        sizes = ", ".join(f"{gen}-{n * per}" for n in sorted(shapes))
        raise TargetError(f"target {name!r}: no {chip.description} slice with {chips} chips; slices: {sizes}")
    return Target(f"{gen}-{chips * chip.cores_per_chip_in_name}", chip, chips, topology=shapes[chips])


def _tpu_from_topology(gen: str, shape_text: str, name: str) -> Target:
    chip = CHIPS[gen]
    if not re.fullmatch(r"\d+(x\d+)*", shape_text):
        raise TargetError(f"malformed topology {name!r}: expected {gen}:" + "x".join(["N"] * chip.topology_dims)
                          + f" (e.g. {gen}:{'x'.join(['2'] * chip.topology_dims)})")
    shape = tuple(int(s) for s in shape_text.split("x"))
    if len(shape) != chip.topology_dims or any(s <= 0 for s in shape):
        raise TargetError(f"malformed topology {name!r}: {chip.description} topologies have {chip.topology_dims} "
                          f"positive dimensions (e.g. {gen}:{'x'.join(['2'] * chip.topology_dims)})")
    chips = math.prod(shape)
    return Target(f"{gen}-{chips * chip.cores_per_chip_in_name}", chip, chips, topology=shape)


def _gpu(gen: str, nodes: int, per_node: int, name: str) -> Target:
    if per_node not in (1, 2, 4, 8) or nodes <= 0 or (nodes > 1 and per_node != GPUS_PER_NODE):
        raise TargetError(f"target {name!r}: a GPU target is 1, 2, 4 or 8 GPUs on one node, or nodes of 8 "
                          f"({gen}x16 = 2 x 8)")
    total = nodes * per_node
    return Target(f"{gen}x{total}", CHIPS[gen], total, nodes=nodes)


def parse_target(name: str) -> Target:
    """A Target from its name (see the module docstring); TargetError names the known forms."""
    if not isinstance(name, str) or not name.strip():
        raise TargetError(f"no target given: set --config.target (one of: {known_targets()})")
    text = name.strip().lower()
    for prefix in ("tpu-", "gpu-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    # TPU topology: v5p:4x4x4
    m = re.fullmatch(r"([a-z0-9]+):(.*)", text)
    if m:
        gen = _ALIASES.get(m.group(1), m.group(1))
        if gen not in CHIPS or CHIPS[gen].platform != "tpu":
            raise TargetError(f"unknown TPU generation in {name!r}; known: v4, v5e, v5p, v6e. Targets: {known_targets()}")
        return _tpu_from_topology(gen, m.group(2), name)
    # TPU slice: v5p-128
    m = re.fullmatch(r"([a-z0-9]+)-(\d+)", text)
    if m and _ALIASES.get(m.group(1), m.group(1)) in CHIPS:
        gen = _ALIASES.get(m.group(1), m.group(1))
        chip = CHIPS[gen]
        if chip.platform == "tpu":
            n = int(m.group(2))
            if n % chip.cores_per_chip_in_name:
                raise TargetError(f"target {name!r}: {gen} slice names count TensorCores (2 per chip); use an even size")
            return _tpu_from_chips(gen, n // chip.cores_per_chip_in_name, name)
    # GPUs: h100x16, 2x8xh100, 8xh100
    m = re.fullmatch(r"([a-z0-9]+)x(\d+)", text)
    if m and m.group(1) in CHIPS and CHIPS[m.group(1)].platform == "cuda":
        total = int(m.group(2))
        if total > GPUS_PER_NODE:
            if total % GPUS_PER_NODE:
                raise TargetError(f"target {name!r}: more than 8 GPUs must be whole nodes of 8")
            return _gpu(m.group(1), total // GPUS_PER_NODE, GPUS_PER_NODE, name)
        return _gpu(m.group(1), 1, total, name)
    m = re.fullmatch(r"(?:(\d+)x)?(\d+)x([a-z0-9]+)", text)
    if m and m.group(3) in CHIPS and CHIPS[m.group(3)].platform == "cuda":
        return _gpu(m.group(3), int(m.group(1) or 1), int(m.group(2)), name)
    raise TargetError(f"unknown target {name!r}; known: {known_targets()}")
