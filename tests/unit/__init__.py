"""The unit lane: in-process tests on fakes only (no servers, no child processes); `make test-unit`."""
