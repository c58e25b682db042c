"""Job arrays end to end: ``gpuc up`` as a real server with the local backend, and the job commands
against it. An array of 12 tasks ``%3`` runs to completion with never more than 3 tasks alive at once
(by the tasks' own clocks and by the recorded times), each task printing its own index; ``queue``
folds an array to one line and ``--expand`` lists its tasks; ``cancel``, ``why`` and ``show`` act on
one task (``40_7``) and on the whole array (``40``); bad input is one line, exit code 2, nothing
stored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest

from tests.cli.test_jobs_cli import Server, free_port
from tests.components import wait_until
from tests.conftest import most_overlapping

pytestmark = pytest.mark.timeout(180)
# A task prints its index and when it ran, by its own clock.
TASK = (
    "import os, time; t = time.time(); time.sleep(1.0); "
    'print(os.environ["GPUC_ARRAY_TASK_ID"], os.environ["SLURM_ARRAY_TASK_ID"], t, time.time())'
)


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
    array_id = submitted_array(server, "--array", "0-11%3", "--", "python3", "-c", TASK)

    def held() -> str | None:
        out = server.gpuc("why", f"{array_id}_11").stdout
        return out if "array-limit" in out else None

    why = wait_until(held, 30, f"task {array_id}_11 never waited for the array's limit", poll_s=0.2)
    assert f"array-limit - array {array_id} has 3 of at most 3 tasks running" in why
    wait_until(lambda: states(server, array_id) == {"finished": 12}, 120, "the array did not finish")
    spans = []
    for index in range(12):
        out = server.gpuc("logs", f"{array_id}_{index}").stdout.split()
        assert out[:2] == [str(index), str(index)], out  # its own GPUC_ and SLURM_ARRAY_TASK_ID
        spans.append((float(out[2]), float(out[3])))
    assert most_overlapping(spans) == 3  # the limit is reached and never passed, by the tasks' clocks
    with sqlite3.connect(server.home / "gpuc.db") as db:
        rows = db.execute(
            "SELECT julianday(started_at), julianday(ended_at) FROM jobs WHERE array_id = ?", (array_id,)
        ).fetchall()
    assert len(rows) == 12 and most_overlapping(rows) <= 3  # and by the times the commons recorded


def test_queue_folds_the_array_and_cancel_acts_on_a_task_and_on_the_array(server: Server) -> None:
    wait = f"until [ -e {server.home.parent / 'never'} ]; do sleep 0.1; done"  # until cancelled
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
