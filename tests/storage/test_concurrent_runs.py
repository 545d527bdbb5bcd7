"""Schedule runs started together into one store all land, each as its own complete version.

Before versions were chosen at the final rename under a lock, two runs started together both took the
same version and the second one exited 2 after a full solve (10 pairs of 10).
"""

from __future__ import annotations

import datetime as dt
import json
import re

from flexopt.runs.store import latest_version_dir

RUN_FILES = {"schedule.parquet", "schedule.csv", "sites.parquet", "sites.csv", "states.parquet", "states.csv",
             "kpis.json", "run.json", "version.json"}


def test_runs_started_together_all_land_as_distinct_versions(tiny, kit, tmp_path):
    store = tmp_path / "runs"
    landed = {}  # folder -> the --mip-gap of the process that said it wrote it
    for size in (2, 2, 2, 4):
        gaps = [f"{0.001 * (len(landed) + i + 1):.3f}" for i in range(size)]
        procs = [kit.start_cli("schedule", "day-ahead", str(tiny), "--date", kit.day, "--store", str(store),
                           "--mip-gap", gap) for gap in gaps]
        for gap, proc in zip(gaps, procs, strict=True):
            out, err = proc.communicate()
            assert proc.returncode == 0, out + err
            assert "Traceback" not in err
            plain = re.sub(r"\x1b\[[0-9;]*m", "", out)  # in case a CI forces colours
            (folder,) = re.findall(r"^schedule written to (.+)$", plain, re.MULTILINE)
            assert folder not in landed
            landed[folder] = gap

    kind_dir = store / "tiny" / kit.day / "day-ahead"
    assert sorted(p.name for p in kind_dir.iterdir()) == [f"v{i:03d}" for i in range(1, 11)]  # no temp left
    sequences = []
    for folder, gap in landed.items():
        run_dir = kind_dir / folder.rsplit("/", 1)[-1]
        assert str(run_dir) == folder
        assert {p.name for p in run_dir.iterdir()} == RUN_FILES
        assert json.loads((run_dir / "run.json").read_text())["options"]["mip_gap"] == float(gap)  # its own
        assert json.loads((run_dir / "kpis.json").read_text())["cost_eur"] < 10
        version = json.loads((run_dir / "version.json").read_text())
        assert version["version"] == run_dir.name and version["kind"] == "day-ahead"
        sequences.append(version["sequence"])
    assert sorted(sequences) == list(range(1, 11))  # one completion order, no ties

    day = dt.date.fromisoformat(kit.day)
    newest = latest_version_dir(store, "tiny", day, ("intraday", "day-ahead"))
    assert json.loads((newest / "version.json").read_text())["sequence"] == 10
