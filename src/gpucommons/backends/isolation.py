"""What keeps a local job away from the commons and from other jobs (design note 0007).

A job is foreign code on the server's machine. Four things keep it from the commons' secrets (the
database, ``credentials.json``, other jobs' logs) and from other jobs:

- a clean environment: the wrapper starts with none at all (``start_wrapper``), and the job gets
  (``job_environment``) only what it asked for, its ``GPUC_*`` identity,
  ``CUDA_VISIBLE_DEVICES`` and a minimal ``PATH``, ``LANG``, ``HOME``, ``TMPDIR``, ``USER``; nothing of
  the server's own environment (``GPUC_HOME``, tokens, database URLs) is inherited;
- its own working directory (``WorkArea``): ``<work root>/<job id>``, mode 0700, owned by the job's
  uid, also its ``HOME``; the work root lies outside ``GPUC_HOME`` (which a job must not be able to
  enter) and is created with an unguessable name, mode 0711, so a job can reach its own directory and
  list nobody else's; when the job ends its directory is handed back to the server user (0700), so a
  later job given the same uid cannot read it;
- a private ``GPUC_HOME`` (``secure_home``): 0700, its files 0600;
- when the server runs as root, a uid of its own per running job (``UidRange``, ``UidReserve``),
  taken from a range no account owns, with no supplementary groups and umask 077. Separate uids are
  what make the rest hold: a job cannot signal, trace or read another job's processes or files, and
  when a job ends every process of its uid is killed (``sweep_uid``), even ones that left its process
  group. A machine-wide lock per uid (``UID_LOCK_DIR``), held by the job's wrapper for the job's life,
  keeps two servers on one host from giving the same uid to two jobs.

Without root none of the uid part is possible: jobs run as the server user, so the clean environment
and their own directory hold, but a job that guesses a path can read what the server user can read.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import logging
import os
import pwd
import py_compile
import stat
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gpucommons.backends import wrapper
from gpucommons.engine.ports import CHECKPOINT_FILE_ENV, LaunchSpec, checkpoint_file
from gpucommons.errors import ConfigError, GpucError

log = logging.getLogger(__name__)

MIN_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_LANG = "C.UTF-8"
JOB_UMASK = 0o077
DEFAULT_JOB_UIDS = "60600-61099"  # inside 60578-61183, which systemd leaves unassigned
WORK_ROOT_RECORD = "work_root"  # file in the backend's state directory naming its work root
MAX_ID = 2**32 - 2  # (uid_t)-1 means "no change" to the kernel
UID_LOCK_DIR = Path("/run/gpucommons/job-uids")  # machine-wide: every server on this host shares it
RESERVE_BATCH = 16  # job uids one scan of the machine's processes finds free (``UidReserve``)

_SWEEP = """\
import os, signal, sys
uid = int(sys.argv[1])
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
try:
    os.kill(-1, signal.SIGKILL)
except ProcessLookupError:
    pass
"""  # run by root, which becomes the job's uid itself: no program has to be reachable by that uid


class NoFreeUidError(GpucError):
    """Every uid of the job range is held by a running job (or by an account); the launch fails."""


@dataclass(frozen=True)
class UidRange:
    """Uids ``first..last`` (inclusive) for jobs, each used as the job's gid too."""

    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> UidRange:
        """``FIRST-LAST``; a malformed or empty range, or one reaching root, is a ``ConfigError``."""
        try:
            first_text, last_text = text.strip().split("-")
            first, last = int(first_text), int(last_text)
        except ValueError:
            raise ConfigError(f"job uids {text!r}: expected FIRST-LAST, e.g. {DEFAULT_JOB_UIDS}") from None
        if not 0 < first <= last <= MAX_ID:
            raise ConfigError(f"job uids {text!r}: need 0 < FIRST <= LAST <= {MAX_ID}")
        return cls(first, last)

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.first <= uid <= self.last

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class JobIdentity:
    """Who a job runs as: ``uid`` ``None`` means the server's own user (the server is not root)."""

    uid: int | None
    user: str


def can_switch_user() -> bool:
    """Only root can start processes under other uids."""
    return os.geteuid() == 0


def server_identity() -> JobIdentity:
    try:
        name = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        name = str(os.geteuid())
    return JobIdentity(None, name)


def _has_account(uid: int) -> bool:
    """Whether a user or a group already owns this id (its files or group rights must not be shared)."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            continue
    return False


def uids_in_use(uids: UidRange) -> set[int]:
    """The uids of ``uids`` some live (not zombie) process holds, as real, effective, saved or file uid.

    Run before every launch, over every process on the machine: each ``status`` is read with one
    ``os.read`` and its two lines found as bytes, a third of the cost of reading it as text."""
    busy: set[int] = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            busy.update(uid for uid in _process_uids(entry.name) if uid in uids)
    return busy


def _process_uids(pid: str) -> list[int]:
    """The uids in ``/proc/<pid>/status`` (none for a zombie, or a process gone meanwhile)."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        text = os.read(fd, 4096)  # "State:" and "Uid:" are among its first lines
    except OSError:
        return []
    finally:
        os.close(fd)
    state_at, uid_at = text.find(b"\nState:"), text.find(b"\nUid:")
    if uid_at < 0 or text[state_at + 7 : state_at + 16].lstrip()[:1] in (b"Z", b"X"):
        return []
    return [int(v) for v in text[uid_at + 5 : text.find(b"\n", uid_at + 5)].split()]


def _lock_dir() -> Path:
    UID_LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private_dir(UID_LOCK_DIR, 0o700)
    return UID_LOCK_DIR


def lock_uid(uid: int) -> int | None:
    """Take ``uid``'s machine-wide lock (``flock`` on ``UID_LOCK_DIR/<uid>``): the open descriptor, or
    ``None`` while someone else — the wrapper of a running job, of this server or another — holds it."""
    fd = os.open(_lock_dir() / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class UidReserve:
    """Hands out job uids (``take``), keeping those it has locked and found free for the launches to
    come: finding a uid free means scanning every process on the machine (``uids_in_use``), and one
    scan checks ``batch`` uids. A uid found free stays free while its lock is held, since nobody runs
    a process as a job uid without holding that uid's lock; so handing out a kept uid later is as safe
    as checking it then. ``release`` gives the kept locks back (the backend does at every poll, so
    they last from one scheduling step's launches to the next step), and so does garbage collection."""

    def __init__(self, uids: UidRange, batch: int = RESERVE_BATCH) -> None:
        self.uids = uids
        self.batch = batch
        self._kept: dict[int, int] = {}  # uid -> the descriptor of its lock, in the order found free
        weakref.finalize(self, _close_locks, self._kept)

    def take(self, job_id: int, held: set[int], prefer: int | None = None) -> tuple[int, int]:
        """A uid for a new job and the descriptor holding its lock (hand it to the job's wrapper,
        which keeps it for the job's life). A uid qualifies when no job this backend tracks holds it
        (``held``), no other server's job holds its lock, no live process runs under it (checked
        after locking, so none can appear meanwhile) and no account owns it. ``prefer`` (the job's
        uid in its last segment) keeps its work directory's files its own; otherwise a kept uid is
        taken, else the search starts at ``job_id`` modulo the range, so a uid comes back into use as
        late as possible."""
        if prefer is not None and prefer in self.uids and prefer not in held:
            if prefer not in self._kept:
                self._find_free(iter([prefer]), held)
            if prefer in self._kept:
                return prefer, self._kept.pop(prefer)
        uid = next((u for u in self._kept if u not in held), None)
        if uid is None:
            start = (job_id - 1) % self.uids.size
            self._find_free(
                (self.uids.first + (start + k) % self.uids.size for k in range(self.uids.size)), held
            )
            uid = next((u for u in self._kept if u not in held), None)
        if uid is None:
            raise NoFreeUidError(
                f"no free job uid in {self.uids.first}-{self.uids.last}: every one is running a job"
            )
        return uid, self._kept.pop(uid)

    def release(self) -> None:
        """Give back the locks of the uids kept for launches that did not come."""
        _close_locks(self._kept)

    def _find_free(self, candidates: Iterator[int], held: set[int]) -> None:
        """Lock up to ``batch`` of ``candidates`` at a time, then scan once; keep those found free,
        until some are or the candidates run out."""
        while True:
            locked: dict[int, int] = {}
            for uid in candidates:
                if uid in held or uid in self._kept or _has_account(uid):
                    continue
                fd = lock_uid(uid)
                if fd is not None:
                    locked[uid] = fd
                    if len(locked) == self.batch:
                        break
            if not locked:
                return
            busy = uids_in_use(self.uids)
            for uid, fd in locked.items():
                if uid in busy:
                    os.close(fd)
                else:
                    self._kept[uid] = fd
            if self._kept:
                return


def _close_locks(locks: dict[int, int]) -> None:
    for fd in locks.values():
        os.close(fd)
    locks.clear()


def sweep_uid(uid: int) -> None:
    """Kill every process of ``uid``: ``kill(-1, SIGKILL)`` sent *as* that uid reaches exactly the
    processes it owns, wherever they moved (another process group, a new session, a daemon). Done
    only under the uid's lock, so it can never hit a job that was given the uid since; a uid whose lock
    someone holds belongs to a running job and is left alone."""
    fd = lock_uid(uid)
    if fd is None:
        return
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _SWEEP, str(uid)],
            env={},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            log.warning("cannot stop the processes of job uid %s: %s", uid, done.stderr.decode()[-200:])
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot stop the processes of job uid %s: %s", uid, exc)
    finally:
        os.close(fd)


def job_environment(spec: LaunchSpec, workdir: Path, identity: JobIdentity) -> dict[str, str]:
    """The job's whole environment: defaults it may override (``PATH``, ``LANG``), what it asked for
    (``spec.env``, e.g. ``GPUC_LAUNCH_ID``), then what the backend decides and it may not change, the
    checkpoint file in its own directory among them."""
    env: dict[str, str] = {"PATH": MIN_PATH, "LANG": DEFAULT_LANG}
    env.update(spec.env)
    first_gpus = spec.placement.node_gpus[0][1] if spec.placement.node_gpus else ()
    env.update(
        HOME=str(workdir),
        TMPDIR=str(workdir),
        USER=identity.user,
        LOGNAME=identity.user,
        CUDA_VISIBLE_DEVICES=",".join(str(i) for i in first_gpus),
        GPUC_JOB_ID=str(spec.job_id),
        GPUC_NODE=",".join(spec.node_names),
        GPUC_GPUS=";".join(
            f"{name}:{','.join(str(i) for i in gpus)}"
            for name, (_, gpus) in zip(spec.node_names, spec.placement.node_gpus, strict=False)
        ),
        GPUC_GPU_MODEL=spec.gpu_model,
        GPUC_ACCOUNT=spec.account,
    )
    env[CHECKPOINT_FILE_ENV] = str(checkpoint_file(workdir, spec.job_id))
    return env


def secure_home(home: Path) -> None:
    """Make ``GPUC_HOME`` 0700 and the files directly in it (database, its journal, credentials) 0600,
    so no other uid — a job's above all — can read them."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)
    for entry in os.scandir(home):
        if entry.is_file(follow_symlinks=False):
            mode = entry.stat(follow_symlinks=False).st_mode
            if mode & 0o077:
                os.chmod(entry.path, stat.S_IMODE(mode) & 0o700)


def open_log(path: Path) -> int:
    """A job's log opened for appending by the server (mode 0600, in a 0700 directory): the job gets
    the descriptor, never the path's permission, so it cannot read this log or reach anyone else's."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _check_private_dir(path: Path, mode: int) -> None:
    """Refuse a directory someone else could have planted or may write into."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ConfigError(f"{path}: not a directory of this user that only it may write; refusing it")
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def _reown(root: Path, old_uid: int, new_uid: int) -> None:
    """Give the files a job's earlier segment (``old_uid``) left in ``root`` to its new uid. Only
    entries ``old_uid`` owns and, for non-directories, with a single link are changed, and links are
    never followed, so a planted symlink or hard link cannot make root chown anything else."""
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        del dirpath
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if st.st_uid == old_uid and (stat.S_ISDIR(st.st_mode) or st.st_nlink == 1):
                    os.chown(name, new_uid, new_uid, dir_fd=dir_fd, follow_symlinks=False)


class WorkArea:
    """Jobs' working directories: ``<root>/<job id>``, kept across a job's segments (a preempted job
    finds its checkpoints again) and locked to the server user between them.

    ``root`` given: used as it is (created 0711 if missing). Otherwise a directory made once with an
    unguessable name in the system's temporary directory (the server's ``TMPDIR``) and recorded in the
    backend's state directory, so a restarted server finds it again."""

    def __init__(self, state_dir: Path, root: Path | None = None) -> None:
        self.state_dir = state_dir
        self._root = root

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = self._recorded_root() or self._new_root()
        elif not self._root.exists():
            self._root.mkdir(mode=0o711, parents=True)
        _check_private_dir(self._root, 0o711)
        return self._root

    def _recorded_root(self) -> Path | None:
        try:
            recorded = Path((self.state_dir / WORK_ROOT_RECORD).read_text().strip())
        except OSError:
            return None
        return recorded if recorded.is_absolute() and recorded.is_dir() else None

    def _new_root(self) -> Path:
        root = Path(tempfile.mkdtemp(prefix="gpuc-jobs-"))
        record = self.state_dir / WORK_ROOT_RECORD
        tmp = record.with_suffix(".tmp")
        tmp.write_text(f"{root}\n")
        os.replace(tmp, record)
        return root

    def prepare(self, job_id: int, identity: JobIdentity, last_uid: int | None) -> Path:
        """The job's directory, created or unlocked for ``identity``; files of its last segment's uid
        ``last_uid`` are handed to the new one when they differ."""
        path = self.root / str(job_id)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{path}: a job's work directory is not a directory")
        if identity.uid is not None:
            if last_uid is not None and last_uid != identity.uid:
                self.lock(path)  # nobody under the old uid may enter while its files change hands
                _reown(path, last_uid, identity.uid)
            os.chown(path, identity.uid, identity.uid, follow_symlinks=False)
        os.chmod(path, 0o700)
        return path

    @staticmethod
    def lock(path: Path) -> None:
        """Hand an ended job's directory back to the server user (0700): the files inside stay, but no
        job — not even a later one given the same uid — can enter it."""
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                if can_switch_user():
                    os.chown(path, os.geteuid(), os.getegid(), follow_symlinks=False)
                os.chmod(path, 0o700)


def identity_for(uid: int | None) -> JobIdentity:
    """The job's user name for ``USER``: its account's name, else ``gpuc-<uid>``."""
    if uid is None:
        return server_identity()
    try:
        return JobIdentity(uid, pwd.getpwuid(uid).pw_name)
    except KeyError:
        return JobIdentity(uid, f"gpuc-{uid}")


WRAPPER_PATH = str(Path(wrapper.__file__).resolve())
COMPILED_WRAPPER = "wrapper.pyc"  # in the backend's state directory


def compile_wrapper(state_dir: Path) -> Path:
    """The wrapper compiled into the backend's private state directory, from this server's own
    source: every job starts one wrapper, and the interpreter runs a ``.pyc`` as it runs a script
    without compiling its source first (a third of the wrapper's start-up)."""
    program = state_dir / COMPILED_WRAPPER
    py_compile.compile(WRAPPER_PATH, cfile=str(program), doraise=True)
    program.chmod(0o600)
    return program


def start_wrapper(
    program: Path, job_dir: Path, spec: LaunchSpec, keep_fds: tuple[int, ...], clock: Callable[[], float]
) -> subprocess.Popen[bytes]:
    """Start the wrapper (``program``, from ``compile_wrapper``) on the launch recorded in
    ``job_dir``. Its environment is empty and its argument is the job directory: nothing the job
    chose reaches the process that keeps the server's uid. It inherits ``keep_fds`` (the uid's lock)
    and holds them until it exits. A start that fails claims the record for "abandoned", so nothing
    ever runs under it."""
    out = open_log(spec.stdout_path)
    try:
        err = open_log(spec.stderr_path)
        try:
            return subprocess.Popen(
                [sys.executable, "-I", "-S", str(program), str(job_dir)],
                cwd="/",
                env={},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                pass_fds=keep_fds,
            )
        except BaseException:
            wrapper.claim(str(job_dir), {"abandoned": True, "at_s": clock()})
            raise
        finally:
            os.close(err)
    finally:
        os.close(out)
