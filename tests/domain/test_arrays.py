"""Job array specs as Slurm writes them, task references, and the environment of a task."""

from __future__ import annotations

import pytest

from gpucommons.domain.arrays import (
    MAX_TASK_INDEX,
    ArrayTask,
    folded_ref,
    parse_array_spec,
    parse_job_ref,
    task_ref,
)
from gpucommons.errors import InvalidRequestError

MAX = 100_000

SPECS = [
    # (text, want task ids, want limit)
    ("0-3", (0, 1, 2, 3), None),
    ("7", (7,), None),
    ("1,3,5-7", (1, 3, 5, 6, 7), None),
    ("0-15:4", (0, 4, 8, 12), None),
    ("0-14:4", (0, 4, 8, 12), None),  # the last step stops before the end
    ("1-5,3-8", (1, 2, 3, 4, 5, 6, 7, 8), None),  # overlapping parts merge, as in Slurm
    ("9,2,5", (2, 5, 9), None),  # ascending whatever the order written
    ("0-11%3", tuple(range(12)), 3),
    ("0-1%50", (0, 1), 50),  # a limit above the count has no effect
    (" 4-5 ", (4, 5), None),
    (f"{MAX_TASK_INDEX}", (MAX_TASK_INDEX,), None),
]


@pytest.mark.parametrize(("text", "want_ids", "want_limit"), SPECS)
def test_spec_parses_to_its_tasks_and_limit(
    text: str, want_ids: tuple[int, ...], want_limit: int | None
) -> None:
    spec = parse_array_spec(text, MAX)
    assert (spec.task_ids, spec.max_running, spec.task_count) == (want_ids, want_limit, len(want_ids))
    assert spec.text == text.strip()


def test_a_full_size_array_parses() -> None:
    spec = parse_array_spec(f"0-{MAX - 1}%50", MAX)
    assert spec.task_count == MAX and spec.task_ids[-1] == MAX - 1


REFUSED = [
    ("5-2", "ends before it starts"),
    ("0-9%0", "limit %0 must be at least 1"),
    ("0-8:0", "step in 0-8:0 must be at least 1"),
    (f"0-{MAX}", f"has {MAX + 1} tasks, more than the maximum of {MAX}"),
    ("0-999999999999", "malformed"),  # more digits than any index
    (f"0-{MAX_TASK_INDEX + 1}", "above the largest"),
    ("0-60000,30000-100000", "more tasks than the maximum"),  # overlapping, still too many
    ("", "malformed"),
    ("abc", "malformed"),
    ("-1", "malformed"),
    ("1-", "malformed"),
    ("1,,2", "malformed"),
    ("%5", "malformed"),
    ("0-9%", "malformed"),
    ("0-9%5%3", "malformed"),
    ("1.5", "malformed"),
    ("0-9 %3", "malformed"),
    ("1" * 201, "malformed"),
]


@pytest.mark.parametrize(("text", "want"), REFUSED)
def test_bad_spec_is_refused_with_one_line(text: str, want: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_array_spec(text, MAX)
    assert want in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "want"), [("40", (40, None)), ("40_7", (40, 7)), ("40_0", (40, 0)), (" 3 ", (3, None))]
)
def test_job_reference(text: str, want: tuple[int, int | None]) -> None:
    assert parse_job_ref(text) == want


@pytest.mark.parametrize("text", ["", "0", "40_", "_7", "40_7_1", "x", "-3", "40-7", "9999999999"])
def test_bad_job_reference_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequestError, match="malformed job reference"):
        parse_job_ref(text)


def test_names_of_a_task_and_a_folded_array() -> None:
    assert task_ref(40, 7) == "40_7"
    assert folded_ref(40, "0-999%50") == "40_[0-999%50]"


def test_task_environment_has_ours_and_slurms_array_variables_only() -> None:
    env = ArrayTask(array_id=40, task_id=7, task_count=12, task_min=0, task_max=11).environment()
    assert env == {
        "GPUC_ARRAY_JOB_ID": "40",
        "GPUC_ARRAY_TASK_ID": "7",
        "GPUC_ARRAY_TASK_COUNT": "12",
        "SLURM_ARRAY_JOB_ID": "40",
        "SLURM_ARRAY_TASK_ID": "7",
        "SLURM_ARRAY_TASK_COUNT": "12",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_ARRAY_TASK_MAX": "11",
    }
