"""Every run analytic on a hand-built log whose right answers are known (tests/analyst/history.py)."""

from __future__ import annotations

import numpy as np
import pytest

from services.analyst import analytics
from tests.analyst.history import RUN, History, full_history


@pytest.fixture(scope="module")
def full():
    return full_history().projection()


def test_replicates_are_kept_apart_from_the_primary_result_and_status(full) -> None:
    c1 = full.archs["c1"]
    assert c1.result["val_loss"] == 2.70 and c1.status == "analyzed"  # the seed-0 run, untouched by re-runs
    assert {s: r["result"]["val_loss"] for s, r in c1.replicates.items()} == {1: 2.72, 2: 2.74}
    assert full.archs["b1"].replicates[2]["status"] == "trained" and full.archs["b1"].status == "analyzed"
    assert c1.promotion["status"] == "promoted" and full.archs["c2"].promotion["status"] == "denied"
    assert full.archs["c6"].status == "analyzed" and full.archs["c6"].failure["kind"] == "leak"
    assert [b.arch_id for b in full.baselines(RUN)] == ["b1", "b2"] and full.baseline(RUN).arch_id == "b1"
    assert full.promotions_pending(RUN) == []


def test_leaderboard_and_lineage(full) -> None:
    board = analytics.leaderboard(full, RUN)
    assert [r["arch_id"] for r in board] == ["c3", "c1", "c2", "b2", "b1", "c4"]
    assert board[0]["promotion"] == "promoted" and board[0]["origin"] == "original"
    assert board[1]["origin"] == "cognition"  # "literature" in the log, the agreed name in the report
    tree = analytics.lineage_tree(full, RUN)
    assert len(tree["nodes"]) == 8 and {"parent": "c1", "child": "c3"} in tree["edges"]
    assert len(tree["edges"]) == 6 and [n["arch_id"] for n in tree["nodes"] if n["sota"]] == ["c1", "c3"]


def test_discovery_curve_counts_sota_against_all_training_seconds_with_a_fitted_slope(full) -> None:
    curve = analytics.discovery_curve(full, RUN)
    xs = [p["training_seconds"] for p in curve["points"]]
    ys = [p["sota"] for p in curve["points"]]
    assert curve["training_seconds"] == 170.0 and curve["sota"] == 2 and len(xs) == 17 + 2
    assert (xs[8], ys[8]) == (90.0, 0) and (xs[9], ys[9]) == (90.0, 1)  # c1 promoted after the 9th training
    assert (xs[15], ys[15], xs[16], ys[16]) == (150.0, 1, 150.0, 2) and (xs[-1], ys[-1]) == (170.0, 2)
    slope, intercept = np.polyfit(xs, ys, 1)
    assert curve["fit"]["slope_per_hour"] == pytest.approx(slope * 3600, rel=1e-5)
    assert curve["fit"]["intercept"] == pytest.approx(intercept, abs=1e-5) and curve["fit"]["stderr_per_hour"] > 0


def test_component_pareto_ranks_the_changed_components_by_their_sota_count(full) -> None:
    pareto = analytics.component_pareto(full, RUN)
    assert pareto["trained"] == 5 and pareto["sota"] == 2  # c1-c4 and c6 trained; c5 failed
    rows = {r["component"]: r for r in pareto["components"]}
    assert [r["component"] for r in pareto["components"][:2]] == ["decay=scalar", "conv=none"]
    assert rows["decay=scalar"] == {"component": "decay=scalar", "trained": 2, "sota": 2, "trained_frequency": 0.4,
                                    "sota_frequency": 1.0, "cumulative_sota_share": 0.6667}
    assert rows["conv=none"]["sota"] == 1 and rows["conv=none"]["cumulative_sota_share"] == 1.0
    assert rows["decay=vector"]["sota"] == 0 and rows["feature_map=relu"]["trained"] == 1
    assert "gate=output" not in rows  # c5 never trained


def test_origin_shares_of_sota_and_the_rest(full) -> None:
    shares = analytics.origin_shares(full, RUN)
    assert shares["sota"] == {"total": 2, "origins": {"cognition": {"count": 1, "share": 0.5},
                                                      "original": {"count": 1, "share": 0.5}}}
    assert shares["rest"]["total"] == 3
    assert {k: v["count"] for k, v in shares["rest"]["origins"].items()} == {"cognition": 1, "experience": 1,
                                                                             "original": 1}


def test_proxy_fidelity_and_sota_rate(full) -> None:
    fidelity = analytics.proxy_fidelity(full, RUN)
    assert fidelity["n"] == 3
    assert fidelity["spearman_val_loss"] == pytest.approx(1.0)  # fitness order = re-run loss order
    assert fidelity["spearman_benchmark"] == pytest.approx(0.5)  # c1 and c2 swap places
    assert analytics.sota_rate(full, RUN) == {"trained": 5, "sota": 2, "rate": 0.4}


def test_exploration_counts_discoveries_above_the_best_baseline(full) -> None:
    figures = analytics.exploration(full, RUN)
    assert (figures["experiments"], figures["discoveries"], figures["baseline_fitness"]) == (6, 3, 0.52)
    assert [p["discoveries"] for p in figures["discovery_curve"]] == [1, 2, 3, 3, 3, 3]


def test_every_analytic_says_so_on_a_log_with_nothing_to_show() -> None:
    h = History()
    h.start()
    h.propose("b1", baseline=True)
    h.fail("b1")  # the baseline failed: nothing can be judged
    report = analytics.run_analytics(h.projection(), RUN)
    assert report["leaderboard"] == [] and report["gallery"] == [] and report["sota_rate"]["rate"] is None
    assert report["baselines"][0]["failure"]["kind"] == "runtime_error"
    assert "note" in report["sota_curve"]["fit"] and "note" in report["proxy_fidelity"]
    assert report["component_pareto"]["components"] == [] and not report["run"]["finished"]


def test_a_malformed_json_field_is_kept_as_text_and_the_fold_goes_on() -> None:
    from services.pb import events_pb2

    h = History()
    h.start()
    h.propose("c1", changes={"decay": "scalar"}, origin="original")
    h.train("c1", 2.0, 0.5)
    h.add(events_pb2.LeakChecked(arch_id="c1", verdict="verified", evidence_json="{not json"), "c1")
    h.judge("c1", 0.6)
    view = h.projection().archs["c1"]
    assert view.leak["evidence"] == {"unreadable": "{not json"} and view.fitness == 0.6
