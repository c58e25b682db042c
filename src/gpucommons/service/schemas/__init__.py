"""API schemas: ``*Create`` / ``*Update`` bodies in, ``*Read`` out; distinct from ORM ``*Row``."""
