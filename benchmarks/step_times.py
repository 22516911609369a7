"""Print the per-step times that `step_benchmark.py --log-dir DIR` kept, to tell slow outlier steps from a
slower median: `python benchmarks/step_times.py DIR`."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(folder: str) -> int:
    for path in sorted(Path(folder).glob("result-*.json")):
        r = json.loads(path.read_text())
        ms = r["step_ms"]
        slow = [(i, round(t, 1)) for i, t in enumerate(ms) if t > 2 * statistics.median(ms)]
        median, mean = statistics.median(ms), statistics.mean(ms)
        print(f"{path.stem}: median {median:.1f} ms, mean {mean:.1f} ms, slow steps {slow}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
