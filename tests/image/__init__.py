"""The image lane: the container image built and run (buildah, podman), the Dockerfile read and replayed.

`make test-image` runs it.
"""
