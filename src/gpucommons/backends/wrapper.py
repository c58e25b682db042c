"""``python -m gpucommons.backends.wrapper EXIT_FILE -- CMD...``: run CMD and write its exit code.

A restarted server is not the parent of the jobs it adopts, so it cannot ``wait()`` for them; this tiny
parent stays with each job and leaves the exit code in a file anyone can read. It survives SIGTERM (a
handler, not SIG_IGN, so the child keeps the default disposition) so that a job stopped gracefully still
gets its code written; SIGKILL of the whole group leaves no file, which the backend reads as "killed".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m gpucommons.backends.wrapper EXIT_FILE -- CMD...", file=sys.stderr)
        return 2
    exit_file, command = argv[0], argv[2:]
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"gpuc: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        _write_atomic(exit_file, "127\n")
        return 127
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
    exit_code = code if code >= 0 else 128 - code  # killed by signal N -> 128 + N, as a shell reports
    _write_atomic(exit_file, f"{exit_code}\n")
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
