"""What the commons' admission stages cost an uncapped replay: full Philly under the same policies, run
side by side in one benchmark run on the code before the stages (a git ref, checked out in a temporary
worktree) and on this tree.

    .venv/bin/python benchmarks/commons_overhead.py                      # las and quota at load 5.3
    .venv/bin/python benchmarks/commons_overhead.py --policies fifo,las --loads 1,5.3 --rounds 2
    .venv/bin/python benchmarks/commons_overhead.py --baseline 5353487 --limit-jobs 20000

Both sides run ``benchmarks/sim_philly.py`` of their own tree with this interpreter, alternating
baseline and current each round so a machine that slows down mid-run penalises both alike; each figure
is the best of its rounds. It also checks that the schedules agree (finished jobs, average JCT, p99
wait, utilization, preemptions): the stages must not change an uncapped replay's decisions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "5353487"  # the last commit before admission stages
SAME_KEYS = ("jobs_finished", "avg_jct_s", "p99_wait_s", "utilization", "preemptions")


def worktree(ref: str) -> Path:
    """A checkout of ``ref`` beside this one (created once, reused by later runs)."""
    path = Path(tempfile.gettempdir()) / f"gpuc-baseline-{ref}"
    if not (path / "src" / "gpucommons").is_dir():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(path), ref],
            check=True,
            capture_output=True,
        )
    return path


def run_side(tree: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            str(tree / "benchmarks" / "sim_philly.py"),
            "--policies",
            args.policies,
            "--loads",
            args.loads,
            "--json",
            out.name,
        ]
        if args.limit_jobs:
            command += ["--limit-jobs", str(args.limit_jobs)]
        env = {"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"}
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        rows: list[dict[str, Any]] = json.loads(Path(out.name).read_text())
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the code to compare against")
    parser.add_argument("--policies", default="las,quota")
    parser.add_argument("--loads", default="5.3")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--limit-jobs", type=int, default=None)
    args = parser.parse_args()

    base_tree = worktree(args.baseline)
    best: dict[str, dict[tuple[str, float], dict[str, Any]]] = {"baseline": {}, "current": {}}
    for round_no in range(args.rounds):
        for side, tree in (("baseline", base_tree), ("current", ROOT)):
            for row in run_side(tree, args):
                key = (row["policy"], row["load"])
                kept = best[side].get(key)
                if kept is None or row["wall_s"] < kept["wall_s"]:
                    best[side][key] = row
            print(f"round {round_no + 1}: {side} done", file=sys.stderr)

    print(f"baseline {args.baseline} vs this tree, best of {args.rounds} round(s), full Philly")
    print(
        f"{'policy':<9} {'load':>5} {'baseline s':>11} {'current s':>10} {'ratio':>7} {'same schedule':>14}"
    )
    for key, current in sorted(best["current"].items()):
        base = best["baseline"][key]
        same = all(
            abs(float(base[k]) - float(current[k])) <= 1e-6 * max(1.0, abs(float(base[k]))) for k in SAME_KEYS
        )
        ratio = current["wall_s"] / base["wall_s"]
        print(
            f"{key[0]:<9} {key[1]:>5g} {base['wall_s']:>11.2f} {current['wall_s']:>10.2f} {ratio:>7.3f} "
            f"{'yes' if same else 'NO':>14}"
        )


if __name__ == "__main__":
    main()
