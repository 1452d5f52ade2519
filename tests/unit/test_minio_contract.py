"""The members of minio that raypod's S3 store relies on (raypod/s3.py): some are minio's own internal
methods, used to stream multipart parts from one buffer. A minio upgrade that renames or reorders
them must fail here, loudly, not in a pod at the end of a job."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from raypod.lean_imports import import_minio


def leading_parameters(function: Callable[..., Any], count: int) -> list[str]:
    names = [name for name in inspect.signature(function).parameters if name != "self"]
    return names[:count]


# Each method with the parameters raypod passes by position, in raypod's order.
CALLED_BY_POSITION = {
    "_put_object": ["bucket_name", "object_name", "data", "headers"],
    "_create_multipart_upload": ["bucket_name", "object_name", "headers"],
    "_upload_part": ["bucket_name", "object_name", "data", "headers", "upload_id", "part_number"],
    "_complete_multipart_upload": ["bucket_name", "object_name", "upload_id", "parts"],
    "_abort_multipart_upload": ["bucket_name", "object_name", "upload_id"],
    "_get_region": ["bucket_name"],
    "get_object": ["bucket_name", "object_name"],
    "fget_object": ["bucket_name", "object_name", "file_path"],
    "stat_object": ["bucket_name", "object_name"],
    "make_bucket": ["bucket_name"],
}


@pytest.mark.parametrize(("method", "parameters"), sorted(CALLED_BY_POSITION.items()))
def test_the_minio_methods_raypod_calls_take_their_arguments_in_raypods_order(
    method: str, parameters: list[str]
) -> None:
    minio_class = import_minio()
    assert leading_parameters(getattr(minio_class, method), len(parameters)) == parameters


def test_a_client_keeps_its_region_cache_where_raypod_fills_it_for_a_write_only_policy() -> None:
    client = import_minio()("127.0.0.1:9", access_key="access", secret_key="secret", secure=False)
    assert isinstance(client._region_map, dict)


def test_minios_part_and_error_types_have_the_fields_raypod_reads() -> None:
    import_minio()
    from minio.datatypes import Part
    from minio.error import InvalidResponseError, S3Error, ServerError

    part = Part(1, "etag")
    assert (part.part_number, part.etag) == (1, "etag")
    assert leading_parameters(S3Error.__init__, 8)[1:] == [
        "code",
        "message",
        "resource",
        "request_id",
        "host_id",
        "bucket_name",
        "object_name",
    ]
    error = S3Error(None, "NoSuchKey", "gone", "/b/o", "r", "h", "b", "o")  # type: ignore[arg-type]
    assert (error.code, error.message, error.bucket_name, error.object_name) == ("NoSuchKey", "gone", "b", "o")
    assert ServerError("boom", 503).status_code == 503
    assert InvalidResponseError(502, "text/html", "<html>")._code == 502
