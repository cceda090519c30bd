"""The run's baselines: DeltaNet, the seed of the search (the researcher's genome renders it), and
Gated DeltaNet, the engineer's file of the paper's layer with the paper's initialisation; the
search descends from both. Both are proposed at run start and trained as ordinary
jobs, so both are in the log; every candidate is judged against the stronger of the two on
each fitness term."""

from __future__ import annotations

from services.engineer.baselines import baseline_code
from services.researcher import genome
from services.researcher.mind import Proposal

SECOND_BASELINE = "gated_deltanet"
RUN_BASELINES = ("deltanet", SECOND_BASELINE)  # the seed first


def gated_deltanet_proposal() -> Proposal:
    code = baseline_code(SECOND_BASELINE)
    return Proposal(
        name="gated-deltanet",
        motivation=("Gated DeltaNet (Yang et al., 2025) is the run's second baseline: the delta rule with "
                    "Mamba2's per-head forgetting gate, as in the paper and with its gate initialisation. "
                    "It is judged like any candidate and is a parent like one."),
        code=code,
        components=genome.components_of(code),  # read from the file's text
        origin="seed",
        citations=(),
        mutation="none: a baseline",
    )
