"""requests and minio imported as a pod imports them (raypod/lean_imports.py): without the modules
raypod never calls, which still load, and work, the moment anything uses them. Each case is a fresh
interpreter, as a pod is: the test process has long imported them all."""

from __future__ import annotations

import json
import subprocess
import sys

#: The heavy modules left out, by package: a real module has a ``__file__``, a placeholder none.
REPORT_HEAVY = """
import json, sys
def real(name):
    return getattr(sys.modules.get(name), "__file__", None) is not None
print(json.dumps({name: real(name) for name in ("charset_normalizer", "minio.minioadmin", "Crypto", "argon2")}))
"""


def run_python(code: str) -> list[str]:
    completed = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == "", completed.stderr  # requests warns of a missing charset library: none here
    return completed.stdout.splitlines()


def test_the_pods_imports_leave_out_charset_detection_and_minios_admin_client() -> None:
    lines = run_python(
        "import raypod.lean_imports as lean\nlean.import_requests()\nlean.import_minio()\n"
        "import raypod.commands, raypod.s3\n" + REPORT_HEAVY
    )
    loaded = json.loads(lines[-1])
    assert loaded == {"charset_normalizer": False, "minio.minioadmin": False, "Crypto": False, "argon2": False}


def test_an_answer_without_a_charset_still_has_its_encoding_guessed_by_the_real_library() -> None:
    lines = run_python(
        "import raypod.lean_imports as lean\nlean.import_requests()\nimport requests, sys\n"
        "answer = requests.models.Response()\nanswer._content = 'naïve café, déjà vu'.encode()\n"
        "print(answer.apparent_encoding, answer.text)\n"
        "import charset_normalizer\nprint(hasattr(charset_normalizer, 'from_bytes'))\n" + REPORT_HEAVY
    )
    assert lines[0] == "utf-8 naïve café, déjà vu"
    assert lines[1] == "True"  # a later import gets the real package
    assert json.loads(lines[-1])["charset_normalizer"] is True


def test_minios_admin_client_can_still_be_imported_after_raypods_minio() -> None:
    lines = run_python(
        "import raypod.lean_imports as lean\nMinio = lean.import_minio()\nfrom minio.minioadmin import MinioAdmin\n"
        "print(Minio.__name__, MinioAdmin.__name__)"
    )
    assert lines == ["Minio MinioAdmin"]


def test_requests_imported_before_is_left_as_it_is() -> None:
    lines = run_python(
        "import requests, sys\nbefore = sys.modules['charset_normalizer']\n"
        "import raypod.lean_imports as lean\nlean.import_requests()\n"
        "print(sys.modules['charset_normalizer'] is before, before.__file__ is not None)"
    )
    assert lines == ["True True"]
