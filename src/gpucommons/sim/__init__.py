"""Discrete-event simulator: replays traces through the same engine and policy core as the service."""
