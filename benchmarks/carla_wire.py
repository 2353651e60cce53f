"""Ticks per second through CARLA's wire protocol versus the embedded simulator, and the smoke
suite's real-time factor through the bridge: ``drive bench carla`` (see
:mod:`drive.pipelines.bench_carla`).

Run ``python benchmarks/carla_wire.py [--ticks 400] [--npcs 30]`` or ``drive bench carla
ticks=400 npcs=30``; one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drive.cli import main as drive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--npcs", type=int, default=30)
    args = parser.parse_args()
    return drive(["bench", "carla", f"ticks={args.ticks}", f"npcs={args.npcs}"])


if __name__ == "__main__":
    raise SystemExit(main())
