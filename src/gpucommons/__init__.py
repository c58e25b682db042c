"""gpucommons: run a shared national pool of AI accelerators as one fair, efficient commons.

The scheduling policy is a pure function (``gpucommons.policy.schedule``); the simulator and the live
service call the same function and differ only in the clock, the state store and the executor.
"""

__version__ = "0.1.0"
