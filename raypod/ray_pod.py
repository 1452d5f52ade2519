"""The first ray-pod's entry point, kept for what was written for it.

The first Bridge Ray pod image ran ``python -u ./ray-pod.py`` from its working directory, and
Kubeflow pipelines built for it still replace the image's command with that line. The raypod image
copies this file to ``/app/ray-pod.py`` (its working directory), so that such a pipeline runs
raypod's pod mode (``run``), unchanged. ``python -m raypod.ray_pod`` is the same.
"""

from __future__ import annotations

from raypod.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run"]))
