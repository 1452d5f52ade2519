"""The benchmark's job, one of two kinds, chosen by its ``--kwargs``:

- ``mb=N``: prints N megabytes as numbered 100-byte lines (1 MB per write), as fast as it can;
- ``seconds=S interval=I``: prints one numbered ``tick`` line every I seconds for S seconds
  (``round(S / I)`` lines), as a job that reports its progress steadily does; with ``quiet=Q`` it
  prints for the first S - Q seconds only and is silent for its last Q (``round((S - Q) / I)`` lines).
"""

import sys
import time

tokens = sys.argv[sys.argv.index("--kwargs") + 1 :]
parameters = dict(token.split("=", 1) for token in tokens)

if "mb" in parameters:
    lines = int(parameters["mb"]) * 10_000
    for start in range(0, lines, 10_000):
        sys.stdout.write("".join(f"line {i:010d} " + "x" * 83 + "\n" for i in range(start, min(start + 10_000, lines))))
    sys.stdout.flush()
else:
    interval = float(parameters["interval"])
    seconds = float(parameters["seconds"])
    ticks = round((seconds - float(parameters.get("quiet", 0))) / interval)
    began = time.monotonic()
    for tick in range(ticks):
        # Against the start, not the last line: the job lasts its seconds whatever each print costs.
        time.sleep(max(0.0, began + tick * interval - time.monotonic()))
        print(f"tick {tick:06d} of {ticks:06d}", flush=True)
    time.sleep(max(0.0, began + seconds - time.monotonic()))
