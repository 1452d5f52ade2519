"""Support code shared by the tests, the demo and the benchmark; not shipped in the raypod wheel.

``services`` starts a real Ray head and moto's S3 server on loopback and stops exactly what it
started; ``proxy`` is the loopback HTTP proxy that records requests (for the benchmark's counts)
and injects faults (for the tests); ``forward_proxy`` is a recording forward proxy (what
``HTTP(S)_PROXY`` points at: absolute-URI requests and ``CONNECT``); ``measure`` runs a command and
reports its own peak RSS and CPU time; ``demo`` is what ``make demo`` runs. Run things from the
repository root as modules (``python -m devtools.demo``, ``python -m bench.run``, ``python -m
pytest``) so that this package is importable without touching ``sys.path``.
"""
