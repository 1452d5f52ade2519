"""The loopback lane: scripted servers on 127.0.0.1 and raypod as a child process; no real Ray head, no S3 server.

`make test-loopback` runs it.
"""
