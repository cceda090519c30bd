"""The researcher README states the design-space size the code computes."""

from __future__ import annotations

from pathlib import Path

from services.researcher.genome import design_space_size
from services.runtime.vocabulary import COMPONENTS, SCALES

README = Path(__file__).resolve().parents[2] / "services" / "researcher" / "README.md"


def test_the_readme_states_the_design_space_size_as_computed():
    text = README.read_text()
    assert f"expressible: **{design_space_size():,}** designs" in text
    searched = design_space_size(searched_only=True)
    assert f"reachable by the offline search (no softmax, the separate layout): **{searched:,}**" in text
    assert f"{len(COMPONENTS)} axes: {len(COMPONENTS) - len(SCALES)} choices and {len(SCALES)} numeric scales" in text
