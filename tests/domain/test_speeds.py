"""The work model's speed table (design note 0009): the shipped throughputs renormalised to the reference,
the catalog's speed where a class has no entry, a cluster file's overrides, and bad tables refused."""

from __future__ import annotations

import math

import pytest

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.speeds import DEFAULT_THROUGHPUT, JOB_CLASSES, SpeedTable
from gpucommons.errors import InvalidRequestError


def test_the_reference_runs_at_one_and_others_relative_to_it() -> None:
    a100 = SpeedTable()
    assert a100.speed("llm-pretrain", "A100") == 1.0
    assert a100.speed("llm-pretrain", "B200") == 4.0  # 2x an H100, which is 2x an A100 (MLPerf Training)
    assert a100.speed("", "H100") == a100.speed("llm-pretrain", "H100")  # no class: the default class
    h100 = SpeedTable(reference="H100")
    for job_class in JOB_CLASSES:
        assert h100.speed(job_class, "H100") == 1.0
    assert h100.speed("llm-pretrain", "A100") == 0.5
    assert h100.speed("inference", "RNGD") == pytest.approx(0.38)  # 0.30-0.46x an H100 (vendor)
    assert h100.speed("inference", "H200") == pytest.approx(1.4)


def test_a_class_without_an_entry_falls_back_to_the_catalog_speed() -> None:
    assert "K80" not in DEFAULT_THROUGHPUT["vision"]
    assert SpeedTable().speed("vision", "K80") == CATALOG["K80"].relative_speed
    assert SpeedTable(reference="V100M32").speed("vision", "K80") == pytest.approx(0.15 / 0.6)


def test_a_stated_speed_wins_over_the_shipped_table() -> None:
    table = SpeedTable(reference="H100", overrides={"inference": {"RNGD": 0.5}})
    assert table.speed("inference", "RNGD") == 0.5
    assert table.speed("llm-pretrain", "RNGD") == pytest.approx(0.5 / 2.0)  # other classes as shipped
    custom = SpeedTable(relative_speeds={"A100": 1.0, "X1": 1.2})
    assert custom.speed("vision", "X1") == 1.2  # a cluster file's own model


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"reference": "Z9"}, "unknown reference model 'Z9'"),
        ({"default_class": "gaming"}, "unknown job class 'gaming'"),
        ({"overrides": {"gaming": {"H100": 1.0}}}, "speeds.gaming: unknown job class"),
        ({"overrides": {"inference": {"Z9": 1.0}}}, "speeds.inference: unknown model 'Z9'"),
        ({"overrides": {"inference": {"H100": 0.0}}}, "need a speed > 0"),
        ({"overrides": {"inference": {"H100": -2.0}}}, "need a speed > 0"),
        ({"overrides": {"inference": {"H100": math.nan}}}, "need a speed > 0"),
        ({"overrides": {"inference": {"A100": 2.0}}}, "the reference runs at 1"),
    ],
)
def test_a_bad_table_is_refused_in_one_line(fields: dict[str, object], said: str) -> None:
    with pytest.raises(InvalidRequestError, match=said) as refused:
        SpeedTable(**fields)  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)
