"""The engine: ports (Clock, StateStore, Executor) and ``run_cycle``, the only caller of ``schedule``."""

from gpucommons.engine.cycle import run_cycle
from gpucommons.engine.ports import Clock, Executor, StateStore

__all__ = ["Clock", "Executor", "StateStore", "run_cycle"]
