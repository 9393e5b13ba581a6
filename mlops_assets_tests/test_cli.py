"""The ``mlops`` commands against a persistent instance under a temporary MLOPS_HOME."""

from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.cli import main
from mlops_assets.names import RANGE_END_TAG, RANGE_START_TAG


def test_land_copies_into_the_day_folder(mlops_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "Train.csv"
    source.write_text("Item_Identifier,Item_MRP\nFDA15,249.8\n")
    assert main(["land", "bigmart_sales", str(source), "--date", "2025-03-04"]) == 0
    landed = mlops_home / "landing" / "bigmart_sales" / "2025-03-04" / "Train.csv"
    assert landed.read_text() == source.read_text()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp, "is a directory: give one data file"),
        (lambda tmp: Path("/dev/null"), "/dev/null is a character device, not a data file"),
        (lambda tmp: tmp / "missing.csv", "no such file"),
        (lambda tmp: (tmp / "empty.csv").touch() or tmp / "empty.csv", "is empty: 0 bytes"),
    ],
    ids=["directory", "dev-null", "missing", "empty"],
)
def test_land_names_what_a_bad_path_is(mlops_home: Path, tmp_path: Path, make, message) -> None:
    """A directory or ``/dev/null`` used to be "no such file" (an empty file was landed)."""
    with pytest.raises(SystemExit, match=message):
        main(["land", "bigmart_sales", str(make(tmp_path))])
    assert not (mlops_home / "landing").exists() or not any((mlops_home / "landing").rglob("*.*"))


def test_unknown_use_case_and_bad_date(mlops_home: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown use case 'nope'"):
        main(["status", "nope"])
    with pytest.raises(SystemExit):
        main(["land", "bigmart_sales", str(tmp_path), "--date", "03/04/2025"])


def test_refresh_fails_loudly_and_keeps_good_days(mlops_home: Path, tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "Item_Identifier,Item_Weight,Item_Fat_Content,Item_Visibility,Item_Type,Item_MRP,"
        "Outlet_Identifier,Outlet_Establishment_Year,Outlet_Size,Outlet_Location_Type,"
        "Outlet_Type,Item_Outlet_Sales\n"
        + "FDA15,9.3,LF,0.016,Dairy,249.8,OUT049,1999,Medium,Tier 1,Supermarket Type1,3735.1\n"
        * 12
    )
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"this is not parquet")
    assert main(["land", "bigmart_sales", str(good), "--date", "2025-03-01"]) == 0
    assert main(["land", "bigmart_sales", str(broken), "--date", "2025-03-02"]) == 0
    assert main(["refresh", "bigmart_sales", "--no-train"]) == 1
    err = capsys.readouterr().err
    assert "broken.parquet" in err
    instance = dg.DagsterInstance.get()  # the persistent instance the CLI used
    assert str(instance.root_directory).startswith(str(mlops_home))
    runs = instance.get_runs()
    # Each landing day is a run of its own, requested as a (one-day) partition range.
    assert sorted((r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in runs) == [
        ("2025-03-01", "2025-03-01"),
        ("2025-03-02", "2025-03-02"),
    ]
    assert (mlops_home / "storage" / "bigmart_sales" / "clean_data" / "2025-03-01.parquet").exists()
    # The good day is ingested now; a second refresh only retries the broken one.
    assert main(["refresh", "bigmart_sales", "--no-train"]) == 1
    assert len(instance.get_runs()) == 3


def test_serve_segment_is_checked_before_anything_starts(mlops_home: Path) -> None:
    """`mlops serve --segment`: a segment of the use case, else an error naming the segments."""
    with pytest.raises(SystemExit, match="no segment 'gills'; segments: cap_gill, stem_season"):
        main(["serve", "mushroom", "--segment", "gills"])
    with pytest.raises(SystemExit, match="bigmart_sales has no segments"):
        main(["serve", "bigmart_sales", "--segment", "cap_gill"])


def test_serve_segment_reaches_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The served bento is told which segment to answer for (in the environment it inherits)."""
    from mlops_assets.environment import Environment
    from mlops_assets.ops import serve

    seen: dict = {}
    monkeypatch.setattr(serve.os, "execve", lambda path, argv, env: seen.update(env))
    env = Environment.from_env()
    serve.exec_serve(env, "mushroom_service:abc", 3999, "127.0.0.1", segment="stem_season")
    assert seen["MLOPS_SERVE_SEGMENTS"] == "stem_season"
    assert seen["MLOPS_FOLLOW_CHAMPION"] == "on"


def test_a_landed_1e19_fails_the_types_check_naming_file_and_column(
    mlops_home: Path, tmp_path: Path, capsys
) -> None:
    """It crashed ``clean_data`` (``cannot safely cast non-equivalent float64 to int64``),
    retried four times over 28 s, naming neither the file nor the column."""
    import time

    from mlops_assets.environment import Environment
    from mlops_assets.features.quality import read_verdict
    from mlops_assets.specs import use_case_specs

    header = (
        "Item_Identifier,Item_Weight,Item_Fat_Content,Item_Visibility,Item_Type,Item_MRP,"
        "Outlet_Identifier,Outlet_Establishment_Year,Outlet_Size,Outlet_Location_Type,"
        "Outlet_Type,Item_Outlet_Sales\n"
    )
    row = "FDA15,9.3,LF,0.016,Dairy,249.8,OUT049,{year},Medium,Tier 1,Supermarket Type1,3735.1\n"
    landed = tmp_path / "Train.csv"
    landed.write_text(
        header + "".join(row.format(year="1e19" if i % 4 == 1 else 1999) for i in range(12))
    )
    assert main(["land", "bigmart_sales", str(landed), "--date", "2025-03-01"]) == 0
    started = time.monotonic()
    main(["refresh", "bigmart_sales", "--no-train"])
    assert time.monotonic() - started < 20
    spec = use_case_specs()["bigmart_sales"]
    verdict = read_verdict(Environment.from_env().lake(), spec, "2025-03-01")
    assert verdict["raw"]["passed"] and not verdict["clean"]["passed"]
    failed = verdict["clean"]["failed"]["types"]
    assert "Outlet_Establishment_Year" in failed and "Train.csv row 2: '1e19'" in failed
    instance = dg.DagsterInstance.get()
    [run] = instance.get_run_records()
    retries = [
        e for e in instance.all_logs(run.dagster_run.run_id) if "RETRY" in str(e.dagster_event_type)
    ]
    assert retries == []


def test_every_command_first_fails_the_runs_a_killed_process_left(
    mlops_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A killed run stayed STARTED forever (and blocked retraining) until a person acted."""
    from mlops_assets.names import REAPED_TAG
    from mlops_assets_tests.harness.runs import killed_run

    (mlops_home / "dagster").mkdir(parents=True)
    pid = killed_run()
    assert main(["list"]) == 0
    assert f"marked failed: its process (pid {pid}" in capsys.readouterr().err
    [record] = dg.DagsterInstance.get().get_run_records()
    assert record.dagster_run.status == dg.DagsterRunStatus.FAILURE
    assert REAPED_TAG in record.dagster_run.tags


def test_every_date_is_read_by_one_strict_parser(mlops_home: Path, tmp_path: Path) -> None:
    """``20261001`` is ISO 8601 but not a day: refused by ``--date`` and by the simulate job."""
    from mlops_assets.components.ingest import SimulateConfig

    source = tmp_path / "Train.csv"
    source.write_text("Item_Identifier,Item_MRP\nFDA15,249.8\n")
    for text in ("20261001", "2026-10-32", "2026-W40"):
        with pytest.raises(SystemExit):
            main(["land", "bigmart_sales", str(source), "--date", text])
        with pytest.raises(ValueError, match="not a YYYY-MM-DD day"):
            SimulateConfig(day=text)
    assert SimulateConfig(day="2026-10-01").day == "2026-10-01"
    assert not (mlops_home / "landing").exists()


def test_land_refuses_a_day_that_would_never_or_not_yet_be_ingested(
    mlops_home: Path, tmp_path: Path, capsys
) -> None:
    import datetime as dt

    from mlops_assets.ingest.days import today

    source = tmp_path / "Train.csv"
    source.write_text("Item_Identifier,Item_MRP\nFDA15,249.8\n")
    tomorrow = (today() + dt.timedelta(days=1)).isoformat()
    with pytest.raises(SystemExit, match=f"not landed: landing day {tomorrow} is after today"):
        main(["land", "bigmart_sales", str(source), "--date", tomorrow])
    with pytest.raises(SystemExit, match="before bigmart_sales's first partition 2024-01-01"):
        main(["land", "bigmart_sales", str(source), "--date", "2023-12-31"])
    assert not (mlops_home / "landing").exists()

    assert main(["land", "bigmart_sales", str(source), "--date", tomorrow, "--allow-future"]) == 0
    assert f"waits until {tomorrow}" in capsys.readouterr().err
    # Not ingested yet, and refresh says so instead of printing nothing.
    assert main(["refresh", "bigmart_sales", "--no-train"]) == 0
    out, err = capsys.readouterr()
    assert f"not ingested: bigmart_sales/{tomorrow}/Train.csv: landed for {tomorrow}" in err
    assert "bigmart_sales: no new landing days (1 landed files not ingested, above)" in out


def test_land_reads_an_event_date_file_before_landing_it(
    mlops_home: Path, tmp_path: Path, capsys
) -> None:
    """m5_sales: the rows' dates decide the partitions, so they are checked, not the day."""
    old = tmp_path / "old.csv"
    old.write_text("id,date,sales\nx,2010-12-30,1\n")
    with pytest.raises(SystemExit, match="rows are dated 2010-12-30..2010-12-30, before the"):
        main(["land", "m5_sales", str(old)])
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("id,date,sales\nx,2010-12-30,1\nx,2011-02-01,1\nx,soon,1\n")
    assert main(["land", "m5_sales", str(mixed)]) == 0
    err = capsys.readouterr().err
    assert "1 rows dated before the first partition 2011-01-29 are left out" in err
    assert "1 rows have no readable date" in err


def test_serve_and_make_dev_default_to_different_ports() -> None:
    """`make dev` (the Dagster UI) and `mlops serve` run side by side on their defaults, and the
    README's curl examples reach the service, not Dagster."""
    import re

    from mlops_assets.cli import build_parser
    from mlops_assets.ops.serve import DEFAULT_PORT

    root = Path(__file__).resolve().parent.parent
    dev_port = int(re.search(r"^DEV_PORT \?= (\d+)$", (root / "Makefile").read_text(), re.M)[1])
    serve_port = build_parser().parse_args(["serve", "bigmart_sales"]).port
    assert serve_port == DEFAULT_PORT != dev_port
    readme = (root / "README.md").read_text()
    assert f"http://127.0.0.1:{dev_port}" in readme
    curls = re.findall(r"curl -s localhost:(\d+)/", readme)
    assert curls and set(curls) == {str(serve_port)}
    assert f"[--port {serve_port}]" in readme


def test_refresh_on_a_fresh_home_prints_only_its_own_lines(mlops_home: Path) -> None:
    """No MLflow INFO line, pickle notice or download progress bar, no Dagster beta/preview
    warning: a fresh home (MLflow creates its tables, the gate downloads the challenger), in a
    process of its own with none of the quieting variables set."""
    import os
    import re
    import subprocess
    import sys

    from mlops_assets.environment import QUIET_DEFAULTS, Environment
    from mlops_assets.ops.demo import land_generated_days

    land_generated_days(Environment.from_env(), "bigmart_sales", days=2, rows=300, seed=3)
    env = {k: v for k, v in os.environ.items() if k not in QUIET_DEFAULTS}
    env.pop("PYTHONWARNINGS", None)
    mlops = Path(sys.executable).with_name("mlops")
    result = subprocess.run(
        [str(mlops), "refresh", "bigmart_sales", "--trials", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    lines = output.splitlines()
    own = re.compile(r"^(ingest bigmart_sales 2\d{3}-\d\d-\d\d|retrain bigmart_sales): ok \(run ")
    assert [line for line in lines if not own.match(line)] == []
    assert len(lines) == 3
