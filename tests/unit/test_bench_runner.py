"""`python -m bench` (make bench) runs every benchmark in one process: each must start
from the environment it was given, whatever the one before it set."""

from __future__ import annotations

import importlib.machinery
import os
import sys
import types
from collections.abc import Iterator

import pytest

from bench.__main__ import run


@pytest.fixture
def fake_benchmarks() -> Iterator[dict[str, object]]:
    seen: dict[str, object] = {}

    def first() -> int:
        os.environ["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/stopped_by_now"
        return 0

    def second() -> int:
        seen["DATABASE_URL"] = os.environ.get("DATABASE_URL")
        return 0

    names = {"bench.fake_first": first, "bench.fake_second": second}
    for name, main in names.items():
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        module.main = main  # type: ignore[attr-defined]
        sys.modules[name] = module
    yield seen
    for name in names:
        sys.modules.pop(name, None)


def test_a_benchmark_does_not_see_what_the_one_before_it_set(
    fake_benchmarks: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert run(["fake_first", "fake_second"], []) == 0
    assert fake_benchmarks == {"DATABASE_URL": None}
    assert "DATABASE_URL" not in os.environ
