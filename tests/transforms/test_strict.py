"""Every configuration model of ``transforms/`` refuses unknown keys and cannot be changed."""

from __future__ import annotations

import inspect

import pydantic
import pytest

from meterlake.transforms import anomaly, balance, billing, loss, loss_diagnosis, prepay, receivables, tariffs, vee
from meterlake.transforms.strict import StrictModel


def test_a_misspelt_key_is_an_error_and_a_built_model_cannot_change() -> None:
    with pytest.raises(pydantic.ValidationError, match="history_dayz"):
        anomaly.WindowRules(history_dayz=30)  # type: ignore[call-arg]
    rules = anomaly.WindowRules(history_days=30)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        rules.history_days = 31  # type: ignore[misc]


@pytest.mark.parametrize(
    "module",
    [anomaly, balance, billing, loss, loss_diagnosis, prepay, receivables, tariffs, vee],
    ids=lambda m: m.__name__,
)
def test_the_modules_configuration_models_are_strict(module: object) -> None:
    models = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, pydantic.BaseModel) and c.__module__ == getattr(module, "__name__", None)
    ]
    assert models
    loose = [m.__name__ for m in models if m.model_config.get("extra") != "forbid" or not m.model_config.get("frozen")]
    assert not loose, f"not strict: {loose}"
    assert all(issubclass(m, StrictModel) for m in models)
