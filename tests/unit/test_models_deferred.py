"""The API's bodies are built on first use, so a function's cold start pays only for the
ones it serves (docs/benchmarks.md, cold import)."""

from __future__ import annotations

from pydantic import BaseModel

from shared import models


def test_every_body_of_the_api_is_built_on_first_use() -> None:
    bodies = [
        value
        for value in vars(models).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == models.__name__
    ]
    assert len(bodies) > 20
    eager = [body.__name__ for body in bodies if not body.model_config.get("defer_build")]
    assert eager == [], "built at import: derive it from models.ApiModel"
