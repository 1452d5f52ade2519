"""``raypod validate`` (a child process that contacts nothing) knows the metadata's ``wheels`` key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli import raypod


def test_validate_knows_the_wheels_key(tmp_path: Path) -> None:
    def validate(metadata: dict[str, Any], **keys: str) -> tuple[int, str]:
        manifest = tmp_path / "cm.json"
        data = {
            "resourceURL": "http://ray.example:8265",
            "jobdata.scriptLocation": "inline",
            "jobdata.jobScript": "import mylib",
            "jobdata.scriptMetadata": json.dumps(metadata),
            **keys,
        }
        manifest.write_text(json.dumps({"kind": "ConfigMap", "data": data}))
        completed = raypod("validate", "--config", str(manifest))
        return completed.returncode, completed.stdout

    wheels = {"wheels": ["bkt:mylib-1.0-py3-none-any.whl"]}
    assert validate(wheels, **{"s3.endpoint": "minio:9000"})[0] == 0
    code, out = validate(wheels)
    assert code == 2 and "error: s3.endpoint: missing, but the wheels of jobdata.scriptMetadata are in S3" in out
    code, out = validate({"wheels": ["bkt:mylib.zip"]}, **{"s3.endpoint": "minio:9000"})
    assert code == 2 and "error: jobdata.scriptMetadata: wheels: wheel 'bkt:mylib.zip' is not a .whl file" in out
    code, out = validate(wheels, **{"s3.endpoint": "minio:9000", "jobproperties": '{"runtime_env": {"py_modules": 1}}'})
    assert code == 2 and "error: jobproperties: runtime_env.py_modules must be a list of URIs" in out
