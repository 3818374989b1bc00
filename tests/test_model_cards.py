"""Every parameter count `models list` prints equals the count of the architecture the adapter
builds (random weights), variant by variant."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from sam_bench import registry
from sam_bench.errors import NotBuilt
from sam_bench.models.base import build_model
from sam_bench.models.cards import MODEL_CARDS, ModelCard, params_text

CASES = [(name, variant, count) for name, card in MODEL_CARDS.items() for variant, count in card.params.items()]


@pytest.mark.parametrize("name,variant,count", CASES, ids=[f"{n}-{v or 'default'}" for n, v, _ in CASES])
def test_card_parameter_count_equals_the_built_architecture(name, variant, count):
    try:
        model = build_model(name, untrained=True, device="cpu", **({"variant": variant} if variant else {}))
    except NotBuilt as exc:
        pytest.skip(str(exc))
    assert model.parameter_count() == count


def test_every_installed_model_has_a_card():
    installed = {ep.name for ep in entry_points(group=registry.GROUPS["models"])}  # not those tests register
    assert installed <= set(MODEL_CARDS) and "ritm" in installed
    assert params_text(ModelCard("promptable", params={"t": 38_962_498, "l": 224_446_642})) == "t 39.0M, l 224.4M"
    assert params_text(MODEL_CARDS["sobel"]) == "-"
