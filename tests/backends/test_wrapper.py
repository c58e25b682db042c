"""The wrapper's own pieces, which replace standard modules it must not import (every job starts one):
its JSON reading and writing agree with ``json``, it starts its command as ``subprocess`` would (the
program found on the job's ``PATH``, a clear reason when it cannot run, default signal dispositions,
no inherited descriptors), and it imports none of the modules that would double its start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpucommons.backends import wrapper
from gpucommons.backends.isolation import compile_wrapper

pytestmark = pytest.mark.timeout(60)
RECORDS = [
    {"command": ["sh", "-c", 'echo "a\\tb" \u00e9\U0001f600'], "env": {"K": "v=\n"}, "uid": None},
    {"deadline_s": 1.5e9, "devices": [], "nested": {"x": [1, -2, 3.25, True, False, None]}},
    {"deadline_s": float("inf")},
]


@pytest.mark.parametrize("record", RECORDS)
def test_the_launch_record_reads_as_json_reads_it(record: dict[str, object]) -> None:
    text = json.dumps(record)
    assert wrapper.parse_json(text) == json.loads(text)
    assert wrapper.parse_json(f"  {text}\n") == record


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "[1,]", "nope"])
def test_what_is_no_json_document_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        wrapper.parse_json(text)


def test_a_claim_is_written_as_json() -> None:
    record: dict[str, bool | int | float] = {
        "pid": 12,
        "start_ticks": 345,
        "started_s": 1.25,
        "abandoned": True,
    }
    assert json.loads(wrapper.json_object(record)) == record


def test_a_command_starts_as_subprocess_would_start_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    opened = os.open(tmp_path / "held", os.O_WRONLY | os.O_CREAT)
    held = os.dup2(opened, 50)  # inheritable, as the uid's lock reaches the wrapper
    os.close(opened)
    try:
        script = (
            f"grep SigIgn /proc/self/status > {out}; ls /proc/self/fd >> {out}; pwd >> {out}; umask >> {out}"
        )
        pid = wrapper.spawn(["sh", "-c", script], {"PATH": "/usr/bin:/bin"}, str(tmp_path), None)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        os.close(held)
    ignored, *rest = out.read_text().split("\n")
    # SIGPIPE and SIGXFSZ back to their defaults: the same ignored set as subprocess gives (a signal the
    # test runner's own parent ignores stays ignored for both)
    expected = subprocess.run(
        ["sh", "-c", "grep SigIgn /proc/self/status"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert ignored == expected
    fds, where, umask = rest[:-3], rest[-3], rest[-2]
    assert {"0", "1", "2"} <= set(fds) and str(held) not in fds  # the lock stays with the wrapper
    assert (where, umask) == (str(tmp_path), "0077")


@pytest.mark.parametrize(
    ("program", "why"), [("no-such-program", "No such file"), ("./data", "Permission denied")]
)
def test_a_command_that_cannot_start_says_why(tmp_path: Path, program: str, why: str) -> None:
    (tmp_path / "data").write_text("not a program")  # mode 0644: not even root may run it
    with pytest.raises(wrapper.SpawnError, match=why):
        wrapper.spawn([program], {"PATH": "/usr/bin:/bin"}, str(tmp_path), None)


def test_the_wrapper_imports_no_module_that_slows_its_start(tmp_path: Path) -> None:
    program = compile_wrapper(tmp_path)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", str(program)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "usage:" in done.stderr  # no job directory given
    imported = {
        line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
    }
    assert "_json" in imported
    assert not imported & {"json", "re", "enum", "signal", "subprocess", "threading", "typing"}
