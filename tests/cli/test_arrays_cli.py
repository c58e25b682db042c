"""Job arrays end to end: ``gpuc up`` as a real server with the local backend, and the job commands
against it. An array of 12 tasks ``%3`` runs to completion with never more than 3 tasks alive at once
(by the tasks' own clocks, written to a named pipe while the test releases them in waves,
``tests/array_witness.py``, and by the recorded times), each task printing its own index; ``queue``
folds an array to one line and ``--expand`` lists its tasks; ``cancel``, ``why`` and ``show`` act on
one task (``40_7``) and on the whole array (``40``); bad input is one line, exit code 2, nothing
stored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator

import pytest

from tests.array_witness import array_pipes, run_to_completion
from tests.cli.test_jobs_cli import Server, free_port
from tests.components import wait_until
from tests.conftest import most_overlapping
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    wide = {"COLUMNS": "200"}  # the queue's lines unwrapped, for reading them back
    srv = Server(tmp_path_factory.mktemp("arrays") / "home", free_port(), extra_env=wide)
    srv.start()
    yield srv
    srv.stop()


def submitted_array(server: Server, *args: str) -> int:
    done = server.gpuc("submit", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("submitted array "), done.stdout
    return int(done.stdout.split()[2])


def states(server: Server, array_id: int) -> dict[str, int]:
    return server.client().get_array(array_id).states


@pytest.mark.slow
def test_twelve_tasks_limited_to_three_run_to_completion(server: Server) -> None:
    with array_pipes() as pipes:
        argv = pipes.task_command("GPUC_JOB_ID")
        array_id = submitted_array(server, "--array", "0-11%3", "--", *argv)

        def held() -> str | None:
            out = server.gpuc("why", f"{array_id}_11").stdout
            return out if "array-limit" in out else None

        why = wait_until(held, 30, f"task {array_id}_11 never waited for the array's limit", poll_s=0.2)
        assert f"array-limit - array {array_id} has 3 of at most 3 tasks running" in why
        witness = run_to_completion(pipes, 12, 3, 120)
    wait_until(lambda: states(server, array_id) == {"finished": 12}, 30, "the array did not finish")
    tasks = server.client().list_jobs(array=array_id)
    assert sorted(t.array_task_id for t in tasks if t.array_task_id is not None) == list(range(12))
    for t in tasks:
        out = server.gpuc("logs", f"{array_id}_{t.array_task_id}").stdout.split()
        assert out == [str(array_id), str(t.array_task_id), "12", str(t.array_task_id)], out
        assert witness.starts[str(t.id)][:2] == (t.array_task_id, t.array_task_id)
    assert not witness.repeated and most_overlapping(witness.spans()) == 3  # reached, never passed
    with sqlite3.connect(server.home / "gpuc.db") as db:
        rows = db.execute(
            "SELECT julianday(started_at), julianday(ended_at) FROM jobs WHERE array_id = ?", (array_id,)
        ).fetchall()
    assert len(rows) == 12 and most_overlapping(rows) <= 3  # and by the times the commons recorded


def test_queue_folds_the_array_and_cancel_acts_on_a_task_and_on_the_array(
    server: Server, releases: Callable[[str], Release]
) -> None:
    wait = releases("never").shell  # runs until cancelled
    array_id = submitted_array(server, "--array", "0-5%2", "--name", "sweep", "--", "sh", "-c", wait)
    plain = server.gpuc("submit", "--name", "single", "--", "sh", "-c", wait)
    assert plain.returncode == 0, plain.stderr
    plain_id = int(plain.stdout.split()[2])
    wait_until(lambda: states(server, array_id).get("running") == 2, 30, "two tasks never ran", poll_s=0.2)

    queue = server.gpuc("queue").stdout
    lines = [line for line in queue.splitlines() if "sweep" in line]
    assert len(lines) == 1 and lines[0].split()[0] == f"{array_id}_[0-5%2]", queue
    assert "2 running, 4 pending" in lines[0] and "has 2 of at most 2 tasks running" in lines[0]
    expanded = [line.split()[0] for line in server.gpuc("queue", "--expand").stdout.splitlines()]
    assert [f"{array_id}_{i}" for i in range(6)] == [
        ref for ref in expanded if ref.startswith(f"{array_id}_")
    ]

    shown = json.loads(server.gpuc("show", str(array_id), "--json").stdout)
    assert (shown["spec"], shown["task_count"], shown["max_running"]) == ("0-5%2", 6, 2)
    task = json.loads(server.gpuc("show", f"{array_id}_3", "--json").stdout)
    assert (task["array_id"], task["array_task_id"], task["state"]) == (array_id, 3, "pending")
    why = server.gpuc("why", str(array_id)).stdout
    assert f"array {array_id} (0-5%2, at most 2 running at once): 2 running, 4 pending" in why
    assert f"its next task {array_id}_2" in why

    one = server.gpuc("cancel", f"{array_id}_5")
    assert (one.returncode, one.stdout.strip()) == (0, f"job {array_id}_5: cancelled")
    assert states(server, array_id) == {"running": 2, "pending": 3, "cancelled": 1}
    whole = server.gpuc("cancel", str(array_id))
    assert whole.returncode == 0 and "(2 stopping)" in whole.stdout, whole.stdout
    wait_until(lambda: states(server, array_id) == {"cancelled": 6}, 30, "the array's tasks did not end")
    assert server.client().get_job(plain_id).state == "running"  # the plain job is not the array's


BAD = [
    (["submit", "--array", "5-2", "--", "true"], "array range 5-2 ends before it starts"),
    (["submit", "--array", "0-9%0", "--", "true"], "array limit %0 must be at least 1"),
    (["submit", "--array", "0-100000", "--", "true"], "more than the maximum of 100000"),
    (["submit", "--array", "every-other", "--", "true"], "malformed array spec"),
    (["cancel", "12_x"], "malformed job reference"),
    (["show", "999_1"], "array 999 not found"),
    (["why", "999"], "job 999 not found"),
]


def test_bad_input_gets_one_line_and_stores_nothing(server: Server) -> None:
    for args, want in BAD:
        result = server.gpuc(*args)
        assert result.returncode == 2, result
        assert want in result.stderr and result.stderr.count("\n") == 1, result.stderr
    array_id = submitted_array(server, "--array", "0-1", "--", "true")
    logs = server.gpuc("logs", str(array_id))
    assert logs.returncode == 2 and f"give one of its tasks, e.g. {array_id}_0" in logs.stderr
    with sqlite3.connect(server.home / "gpuc.db") as db:
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (2,)
        assert db.execute("SELECT count(*) FROM job_arrays").fetchone() == (1,)
