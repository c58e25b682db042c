"""The HTTP service: ``create_app(settings)``, thin routes per resource, schemas and auth."""
