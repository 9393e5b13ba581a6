"""``make bench``: every benchmark of the project, each in a fresh process, results in ``results/``.

Each benchmark is a script with its own arguments and its own ``results/<name>.json`` and ``.md``:
``serving.py`` (the bento against FastAPI + pyfunc and bare endpoints), ``daily_cost.py`` (a
day's work as data grows), ``event_dates.py`` (a daily extract's read of an event-date use case
as the landed history grows), ``quality.py`` (champions against a notebook's default model) and
``m5_scale.py`` (Kaggle-layout M5 at 1,000 to 30,490 series; hours at the full size). Extra
arguments select benchmarks by name: ``run.py serving``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHMARKS = ("serving", "daily_cost", "event_dates", "quality", "m5_scale")


def main(argv: list[str]) -> int:
    chosen = argv or [name for name in BENCHMARKS if (BENCH / f"{name}.py").is_file()]
    failed = []
    for name in chosen:
        print(f"== bench/{name}.py", flush=True)
        if subprocess.run([sys.executable, str(BENCH / f"{name}.py")]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
