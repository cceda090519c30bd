"""Sparse term vectors for the lexical half of hybrid search.

MiniLM blurs the specific names researchers ask for ("Householder", "conjugate gradient",
"elu plus one") into their neighbourhood; a term match brings them back.  Documents carry
BM25-style saturated term frequencies and queries carry ones; Qdrant multiplies in the inverse
document frequency itself (``Modifier.IDF``), so a stored vector depends only on its own text
and ids stay content-derived.
"""

import hashlib
import re
from collections import Counter

# BM25's usual constants; the average length is a fixed typical entry length rather than a
# collection statistic, so a document's vector never changes when others are added.
K1 = 1.2
B = 0.75
TYPICAL_DOCUMENT_TERMS = 150
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how in into is it its not of on or so than that the "
    "then this to was we what when where which while why with without".split()
)


def tokens(text: str) -> list[str]:
    """Lowercase alphanumeric words without stopwords, with a plural ``s`` removed."""
    words = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    return words


def term_id(word: str) -> int:
    """A stable 32-bit id (Qdrant sparse indices are unsigned 32-bit)."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=4).digest(), "big")


def document_vector(text: str) -> tuple[list[int], list[float]]:
    counts = Counter(tokens(text))
    length_norm = 1 - B + B * sum(counts.values()) / TYPICAL_DOCUMENT_TERMS
    weights = {term_id(w): c * (K1 + 1) / (c + K1 * length_norm) for w, c in counts.items()}
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]


def query_vector(text: str) -> tuple[list[int], list[float]]:
    indices = sorted({term_id(word) for word in tokens(text)})
    return indices, [1.0] * len(indices)
