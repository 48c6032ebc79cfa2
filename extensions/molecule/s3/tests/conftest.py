"""Fixtures of the s3 scenario's tests (the shared ones are in ../../conftest.py)."""

from __future__ import annotations

import pytest
from registry_helpers import storage_s3


@pytest.fixture(scope="module")
def bucket(inventory):
    """The registry's bucket, seen through the S3 API of the storage host."""
    variables = inventory.get_variables("storage")
    return storage_s3(variables).Bucket(variables["s3_bucket"])
