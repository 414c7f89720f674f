"""Every package's `__all__` is sorted (constants, classes, functions) and names only real things."""

import importlib
import pkgutil

import pytest

import bulkhead
import bulkhead_files
import bulkhead_http
import bulkhead_postgres
import bulkhead_prompts
import bulkhead_users

MODULES = sorted(
    {
        info.name
        for package in (
            bulkhead,
            bulkhead_users,
            bulkhead_postgres,
            bulkhead_files,
            bulkhead_prompts,
            bulkhead_http,
        )
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        if not info.name.endswith("__main__")
    }
)


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions: the order ruff's RUF022 keeps `__all__` in."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    assert names is not None, f"{name} has no __all__"
    assert list(names) == sorted(names, key=_isort_key), f"{name}.__all__ is not sorted"
    for public in names:
        assert hasattr(module, public), f"{name}.__all__ names missing {public}"
