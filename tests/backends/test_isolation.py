"""Job isolation on the local backend (design note 0007): a clean environment, a directory of its own,
a private ``GPUC_HOME`` and, as root, a uid of its own per running job that nothing of another job can
cross. Tests of the uid part need root (``needs_root``); the rest hold for any server user."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from gpucommons.backends.isolation import (
    DEFAULT_JOB_UIDS,
    JobIdentity,
    NoFreeUidError,
    UidRange,
    UidReserve,
    WorkArea,
    lock_uid,
    uids_in_use,
)
from gpucommons.backends.local import LocalBackend
from gpucommons.errors import ConfigError
from tests.backends.conftest import needs_root
from tests.backends.contract import wait_for
from tests.backends.test_local import spec_builder
from tests.components import wait_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(60)
JOB_UIDS = UidRange.parse(DEFAULT_JOB_UIDS)
SHELL_SET = {"PWD", "OLDPWD", "SHLVL", "_"}  # what the job's own shell adds
JOB_VARS = {
    "PATH", "LANG", "HOME", "TMPDIR", "USER", "LOGNAME", "CUDA_VISIBLE_DEVICES", "GPUC_JOB_ID",
    "GPUC_NODE", "GPUC_GPUS", "GPUC_GPU_MODEL", "GPUC_ACCOUNT", "GPUC_LAUNCH_ID", "GPUC_CHECKPOINT_FILE",
}  # fmt: skip


def _run(
    backend: LocalBackend, root: Path, job_id: int, script: str, env: dict[str, str] | None = None
) -> str:
    """Run ``sh -c script`` to its end; its stdout and stderr."""
    spec = spec_builder(root, env)(job_id, ["sh", "-c", script], 60)
    backend.launch(spec)
    wait_for(backend, job_id, 30)
    return spec.stdout_path.read_text() + spec.stderr_path.read_text()


def _meta(state: Path, job_id: int) -> dict[str, object]:
    data = json.loads((state / str(job_id) / "meta.json").read_text())
    assert isinstance(data, dict)
    return data


def test_a_job_sees_nothing_of_the_servers_environment(
    tmp_path: Path, work_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_env = {
        "GPUC_HOME": str(tmp_path / "home"),
        "GPUC_TOKEN": "gpuc_server_token_value",
        "GPUC_DATABASE_URL": "postgresql+psycopg://gpuc:hunter2@db/gpuc",
        "AWS_SECRET_ACCESS_KEY": "server-secret-value",
        "LD_PRELOAD": "/server/only.so",
        "PYTHONPATH": "/server/src",
    }
    for name, value in server_env.items():
        monkeypatch.setenv(name, value)
    backend = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    out = _run(
        backend, tmp_path / "spec", 1, "env; echo cwd=$(pwd)", {"GPUC_LAUNCH_ID": "x1", "MY_VAR": "mine"}
    )
    job_env = dict(
        line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith("cwd=")
    )
    assert set(job_env) <= JOB_VARS | SHELL_SET | {"MY_VAR"}, sorted(set(job_env) - JOB_VARS - SHELL_SET)
    assert job_env["MY_VAR"] == "mine" and job_env["GPUC_LAUNCH_ID"] == "x1"
    for value in server_env.values():
        assert value not in out
    own = work_root / "1"
    assert (job_env["HOME"], job_env["TMPDIR"]) == (str(own), str(own))
    assert f"cwd={own}" in out
    assert job_env["PATH"] == "/usr/local/bin:/usr/bin:/bin" and job_env["CUDA_VISIBLE_DEVICES"] == "2,5"


def test_gpuc_home_is_made_private_to_the_server_user(tmp_path: Path, work_root: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    for name in ("gpuc.db", "gpuc.db-wal", "credentials.json"):
        (home / name).write_text("secret")
        (home / name).chmod(0o644)
    LocalBackend(home / "backend" / "local", work_root=work_root, home=home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("gpuc.db", "gpuc.db-wal", "credentials.json"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "backend" / "local").stat().st_mode) == 0o700


def test_a_job_runs_in_its_own_directory_whatever_the_spec_names(tmp_path: Path, work_root: Path) -> None:
    backend = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    out = _run(backend, tmp_path / "spec", 2, "pwd; umask; touch made")
    assert out.split()[:2] == [str(work_root / "2"), "0077"]
    made = (work_root / "2" / "made").stat()
    assert stat.S_IMODE(made.st_mode) == 0o600  # what a job creates is its own
    assert not (tmp_path / "spec" / "job-2" / "made").exists()
    assert stat.S_IMODE((work_root / "2").stat().st_mode) == 0o700


def test_the_default_work_root_is_unguessable_private_and_found_again(tmp_path: Path) -> None:
    area = WorkArea(tmp_path)
    root = area.root
    try:
        assert root.name.startswith("gpuc-jobs-") and root.parent == Path(tempfile.gettempdir())
        assert stat.S_IMODE(root.stat().st_mode) == 0o711 and root.stat().st_uid == os.geteuid()
        assert WorkArea(tmp_path).root == root  # a restarted server uses the same one
    finally:
        root.rmdir()


def test_a_planted_work_root_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(ConfigError, match="refusing"):
        _ = WorkArea(tmp_path, planted).root


@pytest.mark.parametrize("text", ["", "60600", "0-10", "10-5", "a-b", f"1-{2**32}"])
def test_a_bad_uid_range_is_one_line(text: str) -> None:
    with pytest.raises(ConfigError, match="job uids") as err:
        UidRange.parse(text)
    assert "\n" not in str(err.value)


# -- the uid part: root only ----------------------------------------------------------------------
def test_jobs_under_their_own_uids_cannot_reach_each_other(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    needs_root()
    backend = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    make_spec = spec_builder(tmp_path / "spec")
    never = releases("never").path
    script = f"echo victim-log-line; echo victim-file > $HOME/private; echo $$ > $HOME/pid; exec cat {never}"
    victim = make_spec(1, ["sh", "-c", script], 60)
    victim_ref = backend.launch(victim)
    wait_until(lambda: (work_root / "1" / "pid").exists(), 30, "the first job never started")
    wait_until(lambda: (work_root / "1" / "pid").read_text().strip() != "", 30, "the first job wrote no pid")
    victim_pid = int((work_root / "1" / "pid").read_text())
    attack = "; ".join(
        [
            "id -u",
            f"cat {work_root}/1/private",
            f"cat {victim.stdout_path}",
            f"ls {work_root}",
            f"cat {tmp_path}/state/1/meta.json",
            f"kill -0 {victim_pid} && echo signalled",
            f"tr '\\0' '\\n' < /proc/{victim_pid}/environ",
        ]
    )
    out = _run(backend, tmp_path / "spec", 2, attack)
    uid = int(out.split()[0])
    assert uid in JOB_UIDS and uid != _meta(tmp_path / "state", 1)["uid"]
    assert "victim-file" not in out and "victim-log-line" not in out
    assert "signalled" not in out and "GPUC_JOB_ID=1" not in out
    assert out.count("Permission denied") >= 5, out
    backend.cancel(1, victim_ref)
    assert wait_for(backend, 1, 30).kind == "cancelled"


def test_nothing_a_job_started_outlives_it_even_outside_its_group(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    needs_root()
    backend = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    # a daemon in a session of its own that never ends by itself; the job ends once it has told the
    # job (through a pipe the job made) that it runs
    forever = releases("never").shell
    daemon = f"setsid sh -c 'touch $HOME/beat; echo up > $HOME/up; exec {forever}' >/dev/null 2>&1 &"
    _run(backend, tmp_path / "spec", 3, f"mkfifo $HOME/up; {daemon} cat $HOME/up >/dev/null; exit 0")
    uid = _meta(tmp_path / "state", 3)["uid"]
    assert isinstance(uid, int) and (work_root / "3" / "beat").exists()  # the daemon did run
    wait_until(lambda: not uids_in_use(UidRange(uid, uid)), 5, "a process of the job's uid outlived the job")


def test_two_servers_on_one_host_never_share_a_uid(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    needs_root()
    never = releases("never").command
    one = LocalBackend(tmp_path / "one", grace_s=1.0, work_root=work_root / "one", job_uids=JOB_UIDS)
    two = LocalBackend(tmp_path / "two", grace_s=1.0, work_root=work_root / "two", job_uids=JOB_UIDS)
    refs = [b.launch(spec_builder(tmp_path / n)(1, never, 60)) for b, n in ((one, "a"), (two, "b"))]
    uids = {_meta(tmp_path / "one", 1)["uid"], _meta(tmp_path / "two", 1)["uid"]}
    assert len(uids) == 2 and uids <= set(range(JOB_UIDS.first, JOB_UIDS.last + 1))
    for backend, ref in zip((one, two), refs, strict=True):
        backend.cancel(1, ref)
        assert wait_for(backend, 1, 30).kind == "cancelled"


def test_a_full_uid_range_fails_the_launch_and_starts_nothing(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    needs_root()
    spare = UidRange(61100, 61183)  # beside the default range, so no other server is using it
    free = next(u for u in range(spare.first, spare.last + 1) if u not in uids_in_use(spare))
    backend = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root, job_uids=f"{free}-{free}")
    make_spec = spec_builder(tmp_path / "spec")
    ref = backend.launch(make_spec(1, releases("never").command, 60))
    with pytest.raises(NoFreeUidError, match="no free job uid"):
        backend.launch(make_spec(2, ["sh", "-c", "touch ran"], 60))
    assert not (work_root / "2" / "ran").exists() and not (tmp_path / "state" / "2" / "meta.json").exists()
    backend.cancel(1, ref)
    assert wait_for(backend, 1, 30).kind == "cancelled"


def _lockable(uid: int) -> bool:
    """Whether nobody holds the uid's lock (taken and given back at once)."""
    fd = lock_uid(uid)
    if fd is not None:
        os.close(fd)
    return fd is not None


def test_uids_found_free_together_are_held_until_taken_or_released() -> None:
    """One scan of the machine's processes serves several launches: the uids it found free stay
    locked by the reserve (no other server can take them) until a launch takes one or the reserve
    gives them back."""
    needs_root()
    spare = UidRange(61100, 61183)  # beside the default range, so no other server is using it
    reserve = UidReserve(spare, batch=4)
    first, first_lock = reserve.take(1, set())
    second, second_lock = reserve.take(2, {first})
    try:
        assert first != second and {first, second} <= set(range(spare.first, spare.last + 1))
        kept = [uid for uid in range(spare.first, spare.last + 1) if uid not in (first, second)][:8]
        assert [uid for uid in kept if not _lockable(uid)] == kept[:2]  # the rest of the batch, held
        reserve.release()
        assert all(_lockable(uid) for uid in kept)  # given back
        assert not _lockable(first)  # a taken uid's lock is the launch's, until it closes it
    finally:
        os.close(first_lock)
        os.close(second_lock)


def test_a_preempted_job_finds_its_files_again_under_its_new_uid(tmp_path: Path, work_root: Path) -> None:
    needs_root()
    area = WorkArea(tmp_path, work_root)
    old, new = JobIdentity(JOB_UIDS.first, "old"), JobIdentity(JOB_UIDS.first + 1, "new")
    path = area.prepare(7, old, None)
    (path / "ckpt").write_text("step 100")
    os.chown(path / "ckpt", old.uid or 0, old.uid or 0)
    secret = tmp_path / "server-secret"
    secret.write_text("x")
    os.link(secret, path / "planted-hardlink")
    (path / "planted-symlink").symlink_to(secret)
    os.lchown(path / "planted-symlink", old.uid or 0, old.uid or 0)
    area.lock(path)
    assert path.stat().st_uid == 0 and stat.S_IMODE(path.stat().st_mode) == 0o700
    assert area.prepare(7, new, old.uid) == path
    assert path.stat().st_uid == new.uid and (path / "ckpt").stat().st_uid == new.uid
    assert secret.stat().st_uid == 0  # neither link made root hand the server's file to the job
