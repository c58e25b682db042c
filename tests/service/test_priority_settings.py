"""The operator's priority-class table (``GPUC_PRIORITY_CLASSES``) and reclaim minimum run
(``GPUC_RECLAIM_MIN_RUN_S``) reach the live engine's policy, and a malformed one stops the service
before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gpucommons.config import Settings
from gpucommons.policy.priority import PriorityClass
from gpucommons.policy.quota import ReclaimPreemptor
from gpucommons.service.scheduler import build_engine


def test_the_live_policy_uses_the_operators_table(tmp_path: Path, migrated_url: str) -> None:
    settings = Settings(
        home=tmp_path, database_url=migrated_url, priority_classes="low=0,normal=5:preempts,high=9"
    )
    engine = build_engine(settings)
    classes = engine.policy.priority_classes
    assert classes.of("normal") == PriorityClass("normal", 5, preempts_lower=True)
    assert classes.of("high") == PriorityClass("high", 9, preempts_lower=False)


def test_by_default_high_preempts_and_the_others_do_not(tmp_path: Path) -> None:
    table = Settings(home=tmp_path).priority_table
    assert [(c.name, c.preempts_lower) for c in table.classes] == [
        ("low", False),
        ("normal", False),
        ("high", True),
    ]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("high=1", "must define 'normal'"),
        ("normal=1,urgent=2", "must be one of"),
        ("normal=soon", "not an integer"),
    ],
)
def test_a_malformed_table_is_refused_in_one_line(tmp_path: Path, value: str, said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        Settings(home=tmp_path, priority_classes=value)


def test_the_reclaim_minimum_run_reaches_the_quota_policy(tmp_path: Path, migrated_url: str) -> None:
    engine = build_engine(Settings(home=tmp_path, database_url=migrated_url, reclaim_min_run_s=120), "quota")
    # the live service's victims: the least work lost since a checkpoint first (design note 0016)
    assert engine.policy.preemptor == ReclaimPreemptor(min_run_s=120, checkpoint_aware=True)
    assert build_engine(Settings(home=tmp_path, database_url=migrated_url), "quota").policy.preemptor == (
        ReclaimPreemptor(min_run_s=0, checkpoint_aware=True)
    )


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf")])
def test_a_reclaim_minimum_run_out_of_range_is_refused(tmp_path: Path, value: float) -> None:
    with pytest.raises(ValidationError, match="reclaim_min_run_s"):
        Settings(home=tmp_path, reclaim_min_run_s=value)
