"""`driftwatch replay` (and run, demo) use one BLAS thread: the pipeline's matrices are
small, and a multi-threaded BLAS only spins against busy cores (monitor/threads.py)."""

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys
from threadpoolctl import threadpool_info
import numpy, scipy.linalg
before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
from monitor.cli import main
main(["--log-level", "WARNING", "replay", sys.argv[1]])
after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"before": before, "after": after}))
"""


def test_replay_runs_with_one_blas_thread(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_bytes(orjson.dumps({"type": "prediction", "id": "a", "model": "m",
                                     "ts": 1_767_225_600.0, "prediction": 0.5}) + b"\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"  # what an unconfigured 2-core host starts with
    out = subprocess.run([sys.executable, "-c", CHILD, str(events)], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True)
    seen = orjson.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] and max(seen["before"]) == 2
    assert seen["after"] and set(seen["after"]) == {1}
