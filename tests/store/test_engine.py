"""Engine set-up details a fresh machine relies on."""

from __future__ import annotations

from pathlib import Path

from gpucommons.store.base import upgrade


def test_sqlite_database_folder_is_created_on_first_use(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    upgrade(f"sqlite:///{home / 'gpuc.db'}")
    assert (home / "gpuc.db").is_file()
