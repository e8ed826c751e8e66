#!/usr/bin/env python3
"""What upgrading a store's metric points costs (docs/BENCHMARKS.md): one binary writes N points
through the native API (10 keys x 1,000 steps a request) into a fresh data directory, then
another starts on it (running any migrations it brings) and the time until it answers /readyz is taken,
with the database's size before and after.

    python3 scripts/bench/metric_migration.py --writer /path/to/older/modelkeep --reader .build/release/modelkeep --points 2000000
    python3 scripts/bench/metric_migration.py --smoke    (the debug build as both, 20,000 points; scripts/test runs this)

Every process started here is stopped by its PID (compare.Server); the data directory is removed
at the end. A start waits at most 120 s (compare.Server): about 15 million stored points here."""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import http, start_modelkeep  # noqa: E402


def database_bytes(data):
    return sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.startswith("modelkeep.db"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--writer", help="the binary that writes the points (an older build)")
    parser.add_argument("--reader", help="the binary that then starts on the store (this build)")
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        binary = os.environ.get("MODELKEEP_BIN", os.path.join(root, ".build", "debug", "modelkeep"))
        args.writer, args.reader, args.points = binary, binary, 20_000
    if not args.writer or not args.reader:
        raise SystemExit("give --writer and --reader, or --smoke")
    work = tempfile.mkdtemp(prefix="modelkeep-migration-")
    try:
        # Both servers use the same data directory under `work` (compare.start_modelkeep's).
        writer = start_modelkeep(args.writer, work)
        try:
            _, created, _ = http("POST", writer.base + "/api/v1/models", {"name": "migration"})
            model = created["model"]["id"]
            for first in range(0, args.points // 10, 1000):
                http("POST", writer.base + f"/api/v1/models/{model}/metrics", {"points": [
                    {"key": f"k{k}", "value": step * 0.5, "step": step} for k in range(10) for step in range(first, first + 1000)]})
        finally:
            writer.stop()
        data = os.path.join(work, "modelkeep-data")
        before = database_bytes(data)
        reader = start_modelkeep(args.reader, work)   # ready once its migrations have run
        reader.stop()
        after = database_bytes(data)
        print(f"| points | database before | start (with migrations) | database after |\n|---|---|---|---|\n"
              f"| {args.points:,} | {before / 1e6:.0f} MB | {reader.startup_seconds:.1f} s | {after / 1e6:.0f} MB |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
