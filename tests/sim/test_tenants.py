"""The tenants file: rows become awards, kinds, sovereignty and quotas; bad rows are one-line errors
naming the file, line and field; trace tenants the file leaves out are an error unless best-effort."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pytest

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.award import Award
from gpucommons.errors import ConfigError
from gpucommons.sim.tenants import TenantRow, TenantTable, parse_tenants, parse_unlisted, read_tenants
from tests.components import require_component
from tests.sim.test_traces import PHILLY_CSV

HEADER = "tenant,kind,awarded_gpus,funded,region,sovereign,gpu_hours,model\n"
GOOD = (
    "# a comment line\n"
    + HEADER
    + "lab-a,university,16,true,non-capital,false,1200,H100\n"
    + "\n"
    + "cons-b,consortium,64,,capital,true,,\n"
    + "idle-c,startup,0,true,capital,false,,\n"
    + "free-d,sme,8,false,non_capital,false,,a100\n"
    + "inst-e,research_institute,32,TRUE,,False,0,\n"
)
MODELS = ("H100", "A100")


def table(text: str = GOOD) -> TenantTable:
    return parse_tenants(text, "tenants.csv", MODELS)


def test_rows_keep_file_order_and_defaults() -> None:
    rows = table().rows
    assert [r.tenant for r in rows] == ["lab-a", "cons-b", "idle-c", "free-d", "inst-e"]
    assert rows[0] == TenantRow("lab-a", "university", 16, True, "non-capital", False, 1200.0, "H100")
    assert rows[1].funded and rows[1].gpu_hours_budget is None and rows[1].model is None
    assert rows[3].region == "non-capital" and rows[3].model == "A100"  # spelled as the cluster does
    assert rows[4].gpu_hours_budget == 0.0 and rows[4].funded and not rows[4].sovereign


def test_awards_are_numbered_in_file_order_and_skip_best_effort_tenants() -> None:
    awards = table().awards()
    assert awards == {
        "lab-a": (Award(1, "lab-a", 16, frozenset({"H100"}), 1200.0),),
        "cons-b": (Award(2, "cons-b", 64),),
        "idle-c": (),  # funded, but nothing awarded
        "free-d": (),  # unfunded
        "inst-e": (Award(3, "inst-e", 32, frozenset(), 0.0),),
    }
    assert all(a.active_at(t) for t in (-1e12, 0.0, 1e12) for a in awards["cons-b"])
    assert awards["cons-b"][0].pays_for("B200") and not awards["lab-a"][0].pays_for("A100")


def test_kinds_regions_sovereignty_and_quotas() -> None:
    tenants = table()
    assert tenants.kinds() == {
        "lab-a": "university",
        "cons-b": "consortium",
        "idle-c": "startup",
        "free-d": "sme",
        "inst-e": "research_institute",
    }
    assert tenants.regions() == {
        "lab-a": "non-capital",
        "cons-b": "capital",
        "idle-c": "capital",
        "free-d": "non-capital",
    }
    assert tenants.sovereign() == frozenset({"cons-b"})
    assert tenants.quotas() == {"lab-a": 16, "cons-b": 64, "idle-c": 0, "free-d": 0, "inst-e": 32}


def test_only_the_required_columns() -> None:
    tenants = parse_tenants("tenant,kind,awarded_gpus\nx,sme,8\n", "t.csv")
    assert tenants.rows == (TenantRow("x", "sme", 8),)
    assert tenants.awards() == {"x": (Award(1, "x", 8),)}


def test_columns_in_any_order_with_a_note() -> None:
    tenants = parse_tenants('note,awarded_gpus,tenant,kind\n"free text, with a comma",4,x,startup\n', "t.csv")
    assert tenants.rows == (TenantRow("x", "startup", 4),)


def test_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "tenants.csv"
    path.write_text(GOOD)
    tenants = read_tenants(path, MODELS)
    assert tenants.source == str(path) and len(tenants.rows) == 5


# -- bad input ---------------------------------------------------------------------------------------
def with_row(row: str) -> str:
    return HEADER + "ok,sme,8,,,,,\n" + row + "\n"


@pytest.mark.parametrize(
    ("name", "text", "want"),
    [
        ("empty file", "", "no header"),
        ("only comments", "# nothing here\n", "no header"),
        ("missing awarded_gpus", "tenant,kind\nx,sme\n", "missing column(s) awarded_gpus"),
        ("missing two columns", "tenant,funded\nx,true\n", "missing column(s) kind, awarded_gpus"),
        ("unknown column", "tenant,kind,awarded_gpus,soverign\nx,sme,8,true\n", "unknown column(s) soverign"),
        ("negative award", with_row("x,sme,-8,,,,,"), "tenants.csv:3: awarded_gpus must be >= 0, got -8"),
        (
            "fractional award",
            with_row("x,sme,2.5,,,,,"),
            "tenants.csv:3: awarded_gpus must be a whole number",
        ),
        ("empty award", with_row("x,sme,,,,,,"), "awarded_gpus"),
        ("word award", with_row("x,sme,eight,,,,,"), "'eight'"),
        (
            "negative budget",
            with_row("x,sme,8,,,,-1,"),
            "tenants.csv:3: gpu_hours must be a finite number >= 0",
        ),
        ("word budget", with_row("x,sme,8,,,,lots,"), "gpu_hours"),
        ("infinite budget", with_row("x,sme,8,,,,inf,"), "gpu_hours"),
        ("bad funded", with_row("x,sme,8,yes,,,,"), "tenants.csv:3: funded must be true or false, got 'yes'"),
        ("bad sovereign", with_row("x,sme,8,,,1,,"), "sovereign must be true or false"),
        ("duplicate tenant", with_row("ok,startup,4,,,,,"), "tenants.csv:3: tenant 'ok' is listed twice"),
        (
            "unknown model",
            with_row("x,sme,8,,,,,B200"),
            "model 'B200' is not a model of the cluster (A100, H100)",
        ),
        ("unknown kind", with_row("x,hospital,8,,,,,"), "kind 'hospital'"),
        ("unknown region", with_row("x,sme,8,,busan,,,"), "region must be capital or non-capital"),
        ("empty tenant", with_row(",sme,8,,,,,"), "tenant is empty"),
        (
            "unknown unit",
            "tenant,kind,awarded_gpus,gpu_hours,unit\nx,sme,8,100,flops\n",
            "tenants.csv:2: unit must be device-hours or reference-hours, got 'flops'",
        ),
        ("short row", with_row("x,sme"), "tenants.csv:3: 2 cells, the header has 8"),
    ],
)
def test_bad_tenants_file_is_one_line(name: str, text: str, want: str) -> None:
    with pytest.raises(ConfigError) as err:
        table(text)
    message = str(err.value)
    assert message.startswith("tenants.csv"), name
    assert want in message and "\n" not in message, message


def test_line_numbers_count_comments_and_blank_lines() -> None:
    with pytest.raises(ConfigError, match=r"tenants\.csv:5: awarded_gpus"):
        table("# licence\n" + HEADER + "\n# a note\nx,sme,-1,,,,,\n")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        read_tenants(tmp_path / "absent.csv")
    assert str(err.value) == f"cannot read tenants file {tmp_path / 'absent.csv'}: No such file or directory"


def test_binary_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"binary\.csv: not a UTF-8 text file"):
        read_tenants(path)


def test_models_default_to_the_catalog() -> None:
    assert parse_tenants("tenant,kind,awarded_gpus,model\nx,sme,8,rngd\n", "t.csv").rows[0].model == "RNGD"
    with pytest.raises(ConfigError, match="'Z9'"):
        parse_tenants("tenant,kind,awarded_gpus,model\nx,sme,8,Z9\n", "t.csv")


# -- trace tenants the file leaves out -------------------------------------------------------------------
def test_unlisted_trace_tenants_are_an_error_naming_how_many_and_the_first() -> None:
    trace = ["lab-a", *(f"vc{i:02d}" for i in range(7))]
    with pytest.raises(ConfigError) as err:
        table().cover(trace)
    message = str(err.value)
    assert "7 tenant(s) of the trace are not listed: vc00, vc01, vc02, vc03, vc04, ..." in message
    assert "vc05" not in message and "--unlisted best-effort" in message and "\n" not in message


def test_unlisted_best_effort_tenants_get_no_award() -> None:
    covered = table().cover(["lab-a", "zz", "new"], "best-effort")
    assert [r.tenant for r in covered.rows][-2:] == ["new", "zz"]
    awards = covered.awards()
    assert awards["new"] == awards["zz"] == () and awards["inst-e"][0].id == 3
    assert covered.quotas()["zz"] == 0 and covered.kinds()["zz"] == "unlisted"
    assert "zz" not in covered.sovereign()


def test_a_fully_listed_trace_leaves_the_table_as_it_is() -> None:
    tenants = table()
    assert tenants.cover(["lab-a", "cons-b"]) is tenants


def test_parse_unlisted() -> None:
    assert parse_unlisted("error") == "error" and parse_unlisted("best-effort") == "best-effort"
    with pytest.raises(ConfigError, match="--unlisted must be error or best-effort, got 'maybe'"):
        parse_unlisted("maybe")


# -- the shipped files ---------------------------------------------------------------------------------
def shipped(name: str, cluster: str) -> TenantTable:
    path = Path(str(resources.files("gpucommons.presets").joinpath(name)))
    return read_tenants(path, {p.model.name for p in load_cluster(cluster).pools})


def test_korea_tenants_cover_the_kinds_regions_and_rules_of_the_commons() -> None:
    tenants = shipped("korea-2026-tenants.csv", "korea-2026")
    rows = tenants.rows
    assert {"consortium", "university", "startup", "sme", "research_institute"} <= {r.kind for r in rows}
    assert {r.region for r in rows} == {"capital", "non-capital"}
    assert tenants.sovereign() and any(not r.funded for r in rows)
    assert sum(tenants.quotas().values()) < load_cluster("korea-2026").total_gpus
    consortia = [r for r in rows if r.kind == "consortium"]
    assert len(consortia) == 3 and all(512 <= r.awarded_gpus <= 1024 and r.sovereign for r in consortia)


def test_philly_tenants_are_the_traces_virtual_clusters() -> None:
    tenants = shipped("philly-tenants.csv", "philly")
    rows = tenants.rows
    assert len(rows) == 15
    assert sum(tenants.quotas().values()) < load_cluster("philly").total_gpus == 2_490
    assert sorted(r.tenant for r in rows if not r.funded) == ["795a4c", "925e2b"]
    assert all(r.awarded_gpus % 8 == 0 for r in rows)


def test_philly_tenants_list_every_virtual_cluster_of_the_trace() -> None:
    require_component(PHILLY_CSV.is_file(), f"the Philly trace at {PHILLY_CSV}")
    with PHILLY_CSV.open(newline="") as handle:
        in_trace = {row["cluster"] for row in csv.DictReader(handle)}
    tenants = shipped("philly-tenants.csv", "philly")
    assert {r.tenant for r in tenants.rows} == in_trace
    assert tenants.cover(in_trace) is tenants


def test_an_award_may_be_stated_in_reference_gpu_hours() -> None:
    text = "tenant,kind,awarded_gpus,gpu_hours,unit\nref,sme,8,100,reference-hours\ndev,sme,8,100,\n"
    awards = parse_tenants(text, "tenants.csv").awards()
    assert (awards["ref"][0].unit, awards["dev"][0].unit) == ("reference-hours", "device-hours")
