"""The ``gpuc`` command: one module per command group; formatting and exit codes live here."""
