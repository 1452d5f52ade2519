"""The ray lane: tests on the real Ray head and/or the S3 server (conftest's session fixtures); `make test-ray`."""
