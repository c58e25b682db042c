"""Accelerator models and the built-in catalog.

Figures are from ``docs/DOMAIN-FACTS.md`` (dense BF16/FP16 tensor peak, TDP, memory). ``relative_speed``
is training throughput relative to an A100 (= 1.0); it is an estimate (workload-dependent) used to
translate work between models. Models found only in traces (Philly's P40/K80-class machines, the
Alibaba openb fleet) are in the catalog too so replays can meter energy; their speeds are assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpucommons.errors import UnknownNameError


@dataclass(frozen=True, slots=True)
class AcceleratorModel:
    """One accelerator model. ``partitions`` lists the allowed fractional splits (e.g. RNGD: 2, 4, 8)."""

    name: str
    vendor: str
    memory_gb: float
    bf16_tflops: float
    tdp_w: float
    relative_speed: float
    kind: str = "gpu"  # "gpu" or "npu"
    partitions: tuple[int, ...] = field(default=())
    source: str = ""


_MODELS: tuple[AcceleratorModel, ...] = (
    AcceleratorModel("A100", "NVIDIA", 80, 312, 400, 1.0, source="DOMAIN-FACTS 1a [S1][S2]"),
    AcceleratorModel("H100", "NVIDIA", 80, 989, 700, 1.8, source="1a [S3]; 1c MLPerf Training v3.0 1.4-2.0x"),
    AcceleratorModel("H200", "NVIDIA", 141, 989, 700, 1.9, source="1a [S5]; 1c training ~= H100"),
    AcceleratorModel("B200", "NVIDIA", 180, 2250, 1000, 3.8, source="1a [S7][S8]; 1c 2.0-2.2x H100"),
    AcceleratorModel("GB200", "NVIDIA", 186, 2500, 1200, 4.3, source="1a [S7][S10]; 1c ~3x H100 (U)"),
    AcceleratorModel("L40S", "NVIDIA", 48, 362, 350, 0.45, source="1a [S12]; 1c 0.23x H100 inference"),
    AcceleratorModel("MI300X", "AMD", 192, 1307, 750, 1.8, source="1a [S14][S15]; 1c ~= H100"),
    AcceleratorModel(
        "RNGD", "FuriosaAI", 48, 256, 180, 0.5, kind="npu", partitions=(2, 4, 8), source="1a [S16]-[S18]"
    ),
    AcceleratorModel("ATOM", "Rebellions", 16, 32, 75, 0.1, kind="npu", source="1a [S19]; TDP not found (U)"),
    AcceleratorModel(
        "REBEL100", "Rebellions", 144, 1000, 600, 1.9, kind="npu", partitions=(2, 4), source="1a [S22][S23]"
    ),
    # Trace fleets (assumptions, for replay metering only).
    AcceleratorModel("P40", "NVIDIA", 24, 12, 250, 0.25, source="Philly 8-GPU machines, 24 GB (assumed P40)"),
    AcceleratorModel("K80", "NVIDIA", 12, 8, 150, 0.15, source="Philly 2-GPU machines, 12 GB (assumed K80)"),
    AcceleratorModel("P100", "NVIDIA", 16, 19, 250, 0.3, source="openb fleet"),
    AcceleratorModel("V100M16", "NVIDIA", 16, 125, 300, 0.6, source="openb fleet"),
    AcceleratorModel("V100M32", "NVIDIA", 32, 125, 300, 0.6, source="openb fleet"),
    AcceleratorModel("T4", "NVIDIA", 16, 65, 70, 0.2, source="openb fleet"),
    AcceleratorModel("A10", "NVIDIA", 24, 125, 150, 0.4, source="openb fleet"),
    AcceleratorModel("G1", "undisclosed", 32, 125, 300, 0.6, source="openb fleet (internal code)"),
    AcceleratorModel("G2", "undisclosed", 32, 125, 300, 0.6, source="openb fleet (internal code)"),
    AcceleratorModel("G3", "undisclosed", 80, 312, 400, 1.0, source="openb fleet (internal code)"),
)

CATALOG: dict[str, AcceleratorModel] = {m.name: m for m in _MODELS}


def get_model(name: str) -> AcceleratorModel:
    """Look a model up by name, case-insensitively."""
    for key, model in CATALOG.items():
        if key.lower() == name.lower():
            return model
    raise UnknownNameError(f"unknown accelerator model {name!r}; known: {', '.join(CATALOG)}")
