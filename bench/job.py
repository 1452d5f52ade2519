"""The benchmark's job: prints ``mb`` megabytes as numbered 100-byte lines (1 MB per write)."""

import sys

tokens = sys.argv[sys.argv.index("--kwargs") + 1 :]
megabytes = int(dict(token.split("=", 1) for token in tokens)["mb"])
lines = megabytes * 10_000
for start in range(0, lines, 10_000):
    sys.stdout.write("".join(f"line {i:010d} " + "x" * 83 + "\n" for i in range(start, min(start + 10_000, lines))))
sys.stdout.flush()
