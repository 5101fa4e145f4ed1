"""Run the benchmarks one after another and print their figures (`make bench`).

    .venv/bin/python bench/run_all.py                      # every benchmark, in turn
    .venv/bin/python bench/run_all.py decisions outbox     # only these
    .venv/bin/python bench/run_all.py --skip audit         # all but these
    .venv/bin/python bench/run_all.py --list               # what there is

A benchmark is a script in bench/ that runs as `__main__` (each starts what it measures and
prints ratios against a baseline measured in the same run). They run one at a time - they
would otherwise compete for the same cores - each with its own defaults; run a script directly
to pass it options. Prints each one's output as it comes, then a summary (name, exit status,
minutes); exits non-zero if any failed.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def benchmarks() -> list[str]:
    """The names of bench/*.py scripts that run as __main__ (this one excluded), sorted."""
    return sorted(
        path.stem for path in BENCH.glob("*.py")
        if path.name != Path(__file__).name and '__name__ == "__main__"' in path.read_text()
    )


def main(argv: list[str] | None = None) -> int:
    available = benchmarks()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="name", help=f"benchmarks to run (default: all of {available})")
    parser.add_argument("--skip", action="append", default=[], metavar="name", help="leave this benchmark out")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(available))
        return 0
    unknown = sorted(set(args.names + args.skip) - set(available))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (there are: {', '.join(available)})")
    chosen = [name for name in (args.names or available) if name not in args.skip]
    results = []
    for name in chosen:
        print(f"\n==> bench/{name}.py", flush=True)
        started = time.monotonic()
        status = subprocess.run([sys.executable, str(BENCH / f"{name}.py")], cwd=BENCH.parent, check=False).returncode
        results.append((name, status, (time.monotonic() - started) / 60))
    print("\n==> summary")
    for name, status, minutes in results:
        print(f"    {name:<12} {'ok' if status == 0 else f'FAILED ({status})':<12} {minutes:5.1f} min")
    return 0 if all(status == 0 for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
