"""Queue orderings: one module each, all implementing ``gpucommons.policy.protocols.Ordering``."""
