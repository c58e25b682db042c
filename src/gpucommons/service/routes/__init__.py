"""One router per resource; ``service/app.py`` mounts them through its ``ROUTERS`` list."""
