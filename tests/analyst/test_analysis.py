"""The offline analyst's explanation: changes against the parent, deltas against it, and
the outcome the researcher reads back as experience."""

from __future__ import annotations

from services.analyst.analysis import analyze, component_changes
from services.runtime.projection import ArchitectureView


def view(arch_id: str, components: dict[str, str], *, fitness: float | None, val_loss: float = 2.3,
         parents: tuple[str, ...] = (), baseline: bool = False, failure: dict[str, str] | None = None,
         benchmarks: dict[str, float] | None = None) -> ArchitectureView:
    benchmarks = benchmarks or {"mqar": 0.5, "copy": 0.5}
    return ArchitectureView(
        arch_id=arch_id, run_id="run", name=arch_id, parents=list(parents), motivation="", code="", code_hash="",
        components=components, origin="cognition" if parents else "seed",
        citations=[{"entry_id": "gated-deltanet-1", "kind": "cognition", "score": 0.7}] if parents else [],
        mutation="", parent_selection="", mind="evolve", is_baseline=baseline, fingerprint="", repair_of_attempt=0,
        result={} if failure else {"val_loss": val_loss, "benchmark_mean": sum(benchmarks.values()) / 2,
                                   "benchmarks": benchmarks},
        failure=failure or {}, fitness=fitness)


PARENT = view("arch-p", {"update": "delta", "decay": "none"}, fitness=0.5, baseline=True)


def test_changes_are_listed_against_the_parent() -> None:
    child = view("arch-c", {"update": "delta", "decay": "scalar"}, fitness=0.6, parents=("arch-p",))
    assert component_changes(child, PARENT) == [("decay", "none", "scalar")]


def test_an_improvement_is_explained_with_numbers_and_tagged_with_what_it_introduced() -> None:
    child = view("arch-c", {"update": "delta", "decay": "scalar"}, fitness=0.6, val_loss=2.2, parents=("arch-p",))
    analysis = analyze(child, PARENT, PARENT)
    assert analysis.outcome == "improved" and analysis.tags == ("decay=scalar",)
    assert "decay: none -> scalar" in analysis.summary and "cites gated-deltanet-1" in analysis.summary
    assert "val_loss 2.2000 vs 2.3000 (-4.3%)" in analysis.summary


def test_a_regression_names_the_tasks_that_got_worse() -> None:
    child = view("arch-c", {"update": "linear", "decay": "none"}, fitness=0.4, val_loss=2.5, parents=("arch-p",),
                 benchmarks={"mqar": 0.1, "copy": 0.5})
    analysis = analyze(child, PARENT, PARENT)
    assert analysis.outcome == "regressed" and "Lower accuracy on mqar" in analysis.summary


def test_a_failure_is_filed_as_a_lesson_to_avoid() -> None:
    broken = view("arch-c", {"update": "delta", "decay": "vector"}, fitness=None, parents=("arch-p",),
                  failure={"kind": "non_causal", "message": "output at t=3 changed"})
    analysis = analyze(broken, PARENT, PARENT)
    assert analysis.outcome == "failed" and "non_causal" in analysis.summary and "Avoid" in analysis.summary
    assert analysis.tags == ("decay=vector",)


def test_the_code_diff_and_the_effects_against_parent_siblings_and_baselines() -> None:
    from services.analyst.analysis import code_diff, effects

    parent = view("arch-p", {"decay": "none"}, fitness=0.5, val_loss=2.4, baseline=True)
    parent.code = "a = 1\nb = 2\n"
    child = view("arch-c", {"decay": "scalar"}, fitness=0.6, val_loss=2.2, parents=("arch-p",))
    child.code = "a = 1\nb = 3\n"
    sibling = view("arch-s", {"decay": "vector"}, fitness=0.4, val_loss=2.6, parents=("arch-p",))
    gated = view("arch-g", {}, fitness=0.55, val_loss=2.1, baseline=True)
    diff = code_diff(child, parent)
    assert "-b = 2\n+b = 3\n" in diff and diff.startswith("--- arch-p.py\n+++ arch-c.py\n")
    assert code_diff(child, None) == ""
    measured = effects(child, parent, [sibling], [parent, gated])
    loss = measured["val_loss"]
    assert loss["value"] == 2.2 and abs(loss["parent"]["change"] - (2.2 - 2.4)) < 1e-12
    assert abs(loss["siblings"]["reference"] - 2.6) < 1e-12 and abs(loss["baseline:arch-g"]["change"] - 0.1) < 1e-12
    assert abs(measured["fitness"]["baseline:arch-g"]["change"] - 0.05) < 1e-12 and measured["siblings"] == ["arch-s"]


def test_the_summary_names_every_baseline() -> None:
    gated = view("arch-g", {}, fitness=0.55, val_loss=2.1, baseline=True)
    child = view("arch-c", {"update": "delta", "decay": "scalar"}, fitness=0.6, val_loss=2.2, parents=("arch-p",))
    analysis = analyze(child, PARENT, PARENT, [gated])
    assert "Against baseline arch-g: val_loss 2.2000 vs 2.1000 (+4.8%)" in analysis.summary
