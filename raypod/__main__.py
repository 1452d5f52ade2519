"""``python -m raypod``: the command line of ``raypod.cli``."""

import importlib
import os
import sys


def _unshadow() -> None:
    """Import the real ``raypod`` when a folder named ``raypod`` on ``sys.path`` stood in for it.

    ``python -m`` puts the current directory first on ``sys.path``. Run from the folder that holds a
    checkout named ``raypod/``, that checkout (no ``__init__.py``) is taken as a namespace package
    ``raypod`` whenever the real one is not found by the path scan, as with an editable install, whose
    finder comes after it. Such a package has no ``__version__`` and the import of the CLI fails.
    Without those folders on ``sys.path`` the import finds the installed package.
    """
    package = sys.modules.get("raypod")
    if package is None or getattr(package, "__file__", None) is not None:
        return
    shadowing = [
        entry
        for entry in sys.path
        if os.path.isdir(os.path.join(entry or os.curdir, "raypod"))
        and not os.path.isfile(os.path.join(entry or os.curdir, "raypod", "__init__.py"))
    ]
    sys.path[:] = [entry for entry in sys.path if entry not in shadowing]
    for name in [name for name in sys.modules if name == "raypod" or name.startswith("raypod.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


_unshadow()

from raypod.cli import main  # noqa: E402  (after the real raypod is in place)

raise SystemExit(main())
