"""``gpuc server`` (run the API) and ``gpuc login`` (store the URL and token for later commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpucommons.cli.common import console
from gpucommons.cli.credentials import Credentials, save_credentials
from gpucommons.cli.up import BackendOption, ClusterOption, SlurmConfigOption, settings_from_options
from gpucommons.client import GpucClient
from gpucommons.config import Settings


def server_command(
    home: Annotated[Path | None, typer.Option(help="state directory (default GPUC_HOME or ~/.gpuc)")] = None,
    host: Annotated[str | None, typer.Option(help="listen address (default GPUC_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (default GPUC_PORT or 8080)")] = None,
    scheduler: Annotated[bool, typer.Option(help="run the scheduler loop in this process")] = True,
    lifecycle: Annotated[
        bool, typer.Option(help="run the award lifecycle timer and send notices in this process")
    ] = True,
    backend: BackendOption = None,
    cluster: ClusterOption = None,
    slurm_config: SlurmConfigOption = None,
) -> None:
    """Run the gpucommons API server (migrates the database to the newest schema first)."""
    import uvicorn

    from gpucommons.service.app import create_app
    from gpucommons.service.bootstrap import check_backend_cluster

    settings = settings_from_options(
        home=home, host=host, port=port, backend=backend, cluster=cluster, slurm_config=slurm_config
    )
    check_backend_cluster(settings)
    app = create_app(settings)
    if scheduler:
        from gpucommons.service.scheduler import start_in_background

        start_in_background(app, settings)
    if lifecycle:
        from gpucommons.service.lifecycle import start_lifecycle_in_background

        start_lifecycle_in_background(app)
    console.print(f"gpucommons API on http://{settings.host}:{settings.port} (docs at /docs)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


def login_command(
    url: Annotated[str, typer.Option(help="server URL, e.g. http://127.0.0.1:8080")],
    token: Annotated[str, typer.Option(help="API token from your admin or `gpuc admin user token`")],
    home: Annotated[Path | None, typer.Option(help="state directory (default GPUC_HOME or ~/.gpuc)")] = None,
) -> None:
    """Check the token against the server and store both in GPUC_HOME/credentials.json."""
    settings = Settings(home=home) if home is not None else Settings()
    client = GpucClient(url, token)
    try:
        me = client.whoami()
    finally:
        client.close()
    path = save_credentials(settings.home, Credentials(url=url, token=token, user=me.name))
    console.print(f"logged in as {me.name} ({me.role}); credentials in {path}")
