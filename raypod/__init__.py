"""raypod: the Ray pod of the Bridge Operator. Runs one job on an external Ray cluster."""

__version__ = "0.1.0"
