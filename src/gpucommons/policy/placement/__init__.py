"""Placers: one module each, all implementing ``gpucommons.policy.protocols.Placer``."""
