import asyncio
import json
from pathlib import Path

import pytest

from services.cognition.knowledge import ExperienceEntry, KnowledgeBase, load_corpus
from services.researcher.service import REFERENCES_PER_KIND, reference_hits


def test_a_store_is_built_once_and_persists_across_restarts(tmp_path: Path, small_corpus: Path) -> None:
    expected = len(load_corpus(small_corpus))
    kb = KnowledgeBase.open(data_dir=tmp_path)
    assert kb.ensure_built(small_corpus) == expected
    assert kb.ensure_built(small_corpus) == 0
    kb.close()

    reopened = KnowledgeBase.open(data_dir=tmp_path)
    assert (tmp_path / "qdrant").is_dir()
    assert reopened.count("cognition") == expected
    assert reopened.ensure_built(small_corpus) == 0
    reopened.close()


def test_an_edited_corpus_entry_replaces_its_old_version(tmp_path: Path, small_corpus: Path) -> None:
    kb = KnowledgeBase.open(data_dir=tmp_path / "store")
    kb.ensure_built(small_corpus)
    before = {entry.id for entry in load_corpus(small_corpus)}
    path = small_corpus / "retnet-2023.json"
    record = json.loads(path.read_text())
    record["entries"][0]["implementation_notes"] += " Use GroupNorm per head."
    path.write_text(json.dumps(record))
    after = {entry.id for entry in load_corpus(small_corpus)}

    assert kb.ensure_built(small_corpus) == 1
    assert kb.count("cognition") == len(after)
    [old_id] = before - after
    [new_id] = after - before
    assert kb.get(old_id) is None
    assert kb.get(new_id).implementation_notes.endswith("Use GroupNorm per head.")
    kb.close()


def test_open_takes_exactly_one_of_data_dir_and_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        KnowledgeBase.open()
    with pytest.raises(ValueError):
        KnowledgeBase.open(data_dir=tmp_path, url="http://localhost:6333")


def test_search_returns_scored_hits_with_readable_excerpts(kb: KnowledgeBase) -> None:
    hits = kb.search("error-correcting delta rule update for the state", k=5, kinds=("cognition",))
    assert len(hits) == 5
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert all(hit.kind == "cognition" and hit.title and hit.text and hit.tags for hit in hits)
    assert any("update=delta" in hit.tags for hit in hits)


def test_tag_filters_require_every_tag(kb: KnowledgeBase) -> None:
    hits = kb.search("improve recall", k=20, kinds=("cognition",), tags=["update=delta", "decay=scalar"])
    assert hits
    assert all({"update=delta", "decay=scalar"} <= set(hit.tags) for hit in hits)


def test_paper_and_year_filters(kb: KnowledgeBase) -> None:
    hits = kb.search("gating", k=10, paper="mamba2-2024")
    assert hits and {hit.paper for hit in hits} == {"mamba2-2024"}
    papers_of_2022 = {entry.paper for entry in load_corpus() if entry.year == 2022}
    hits = kb.search("gating", k=10, year=2022)
    assert hits and {hit.paper for hit in hits} == papers_of_2022


def test_an_unknown_tag_in_a_query_is_an_error(kb: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match="decay"):
        kb.search("anything", tags=["decay=sometimes"])


def test_get_returns_the_whole_entry(kb: KnowledgeBase) -> None:
    [hit] = kb.search("householder products per token", k=1, kinds=("cognition",))
    entry = kb.get(hit.id)
    assert entry is not None
    assert (entry.id, entry.paper, entry.title) == (hit.id, hit.paper, hit.title)
    assert entry.algorithm and entry.symptoms
    assert kb.get("cog-00000000000000000000") is None


def _experience(run_id: str, **changes: object) -> ExperienceEntry:
    fields = {
        "run_id": run_id,
        "arch_id": "arch-7",
        "parent_id": "arch-3",
        "summary": "Adding an L2 norm on keys stabilised the delta-rule state.",
        "changes": "qk_norm none -> l2 on the parent's delta rule",
        "outcome": "state norm stayed bounded; validation loss 2.21 against the parent's 2.30",
        "fitness": 0.61,
        "tags": ["qk_norm=l2", "update=delta"],
    }
    fields.update(changes)
    return ExperienceEntry(**fields)


def test_experience_is_idempotent_and_retrieved_with_literature(kb: KnowledgeBase) -> None:
    before = kb.count("experience")
    entry = _experience("run-idempotent")
    first = kb.add_experience(entry)
    assert kb.add_experience(entry) == first
    assert kb.count("experience") == before + 1

    hits = kb.search("keys not normalised, state norm unstable", k=10, run_id="run-idempotent")
    kinds = {hit.kind for hit in hits}
    assert kinds == {"cognition", "experience"}
    [mine] = [hit for hit in hits if hit.kind == "experience"]
    assert mine.id == first and mine.paper == "arch-7"
    assert kb.get_experience(first) == entry
    assert kb.get(first) is not None and kb.get(first).kind == "experience"


def test_tag_order_does_not_change_an_experience_id(kb: KnowledgeBase) -> None:
    entry = _experience("run-order", tags=["update=delta", "qk_norm=l2"], fitness=1)
    reordered = _experience("run-order", tags=["qk_norm=l2", "update=delta"], fitness=1.0)
    assert entry.id == reordered.id == kb.add_experience(entry) == kb.add_experience(reordered)


def test_a_different_outcome_is_a_different_experience(kb: KnowledgeBase) -> None:
    first = kb.add_experience(_experience("run-distinct"))
    second = kb.add_experience(_experience("run-distinct", outcome="diverged at step 40"))
    assert first != second


def test_run_filter_scopes_experience_only(kb: KnowledgeBase) -> None:
    kb.add_experience(_experience("run-a", arch_id="arch-a"))
    kb.add_experience(_experience("run-b", arch_id="arch-b"))
    hits = kb.search("L2 norm on keys", k=50, kinds=("experience",), run_id="run-a")
    assert {hit.paper for hit in hits} == {"arch-a"}


def test_experience_with_an_unknown_tag_is_refused(kb: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match="tags"):
        kb.add_experience(_experience("run-bad", tags=["norm=l2"]))


def test_the_researcher_gets_papers_even_when_the_runs_analyses_outscore_them(kb: KnowledgeBase) -> None:
    # The query is the parent's analysis; its siblings' analyses, written by the same analyst in the
    # same words, read like it (measured on the first discovery run: 0 papers among the 6 hits for
    # each of its last 12 analyses).
    def analysis(n: int) -> str:
        return (f"delta-window-{n} changed window: 64 -> {n} (origin experience). Against delta: val_loss "
                f"2.61{n} vs 2.6617, benchmark mean 0.61{n} vs 0.6284. Against baseline gated-deltanet: "
                f"val_loss 2.61{n} vs 2.2854 (+14.2%). Fitness 0.44{n} vs 0.4378: improved.")

    for n in range(1, 9):
        kb.add_experience(_experience("run-crowded", arch_id=f"arch-{n}", summary=analysis(n),
                                      changes=f"window: 64 -> {n}", outcome="improved", tags=[]))
    query = analysis(4)
    assert {hit.kind for hit in kb.search(query, k=6, run_id="run-crowded")} == {"experience"}

    async def search(query: str, *, k: int, kinds: tuple[str, ...], run_id: str) -> list:
        return kb.search(query, k=k, kinds=kinds, run_id=run_id)

    hits = asyncio.run(reference_hits(search, query, "run-crowded"))
    assert [hit.kind for hit in hits] == (["cognition"] * REFERENCES_PER_KIND["cognition"]
                                          + ["experience"] * REFERENCES_PER_KIND["experience"])
