"""Every stored result says where it was run: the commit, the date, the versions, the cores
(benchmarks/record.py), in the configuration the harnesses store."""
import argparse
import datetime
import os
import subprocess

from benchmarks.record import provenance, stored_config
from conftest import ROOT


def test_provenance_names_the_commit_versions_and_cores():
    p = provenance()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert p["commit"].split("+")[0] == head
    assert abs(datetime.datetime.fromisoformat(p["date"])
               - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 60
    import horovod
    import torch
    assert (p["torch"], p["horovod"], p["cores"]) == (torch.__version__, horovod.__version__,
                                                      os.cpu_count())


def test_stored_config_carries_it_and_no_local_path(tmp_path):
    config = stored_config(argparse.Namespace(json=str(ROOT / "docs" / "x.json"), rate="1gbit"))
    assert config["json"] == "docs/x.json" and config["rate"] == "1gbit"
    assert set(config["provenance"]) >= {"commit", "date", "torch", "horovod", "cores"}
