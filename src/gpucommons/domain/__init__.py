"""Pure, frozen domain types. Imports nothing else from the package but ``errors``."""
