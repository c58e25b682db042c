"""Live execution backends, one module each (``local``; ``slurm`` and ``kubernetes`` to follow)."""
