"""Trace readers: the only I/O in the simulator. Each returns plain ``Job`` tuples."""
