"""The LLM mind: a served model writes new mixers as edits against a parent.

Why edits and not whole files: asked for a whole new file in a JSON field, Qwen2.5-Coder-1.5B
gave 0 buildable mixers out of 3 (one ran to the token limit, two put a Markdown fence inside
the code, renamed the class and dropped imports); asked for ``edits: [{search, replace}]``
against the parent, 4 of 4 parsed, applied and built (FIELD-NOTES).  So the answer is
``{name, motivation, origin, cites, edits}``.  What a small model still gets wrong is handled
by engineering around it, each step recorded:

- fences (```` ```python ````) are stripped from every search and replace text;
- an edit whose search text does not occur exactly once (after a whole-line, whitespace-tolerant
  retry, then a unique approximate match of its lines, noted) is a clear failure
  (``edits_not_applied``) naming the edit and why;
- names a file uses but never binds, when they are the contract's allowed ones (``torch``,
  ``F``, ``nn``, ``math``, ``rearrange``, the ``kernels`` entry points), get their import
  added deterministically: the measured repair rounds never added a missing import;
- a renamed ``Mixer`` class gets a ``Mixer = <class>`` alias;
- the contract check (``gates.contract_failure``) and the engineer's probes name the error;
  a repair round then shows the model the failing line with its context.

A second answer format, ``methods`` (``ASI_LLM_ANSWER=methods``): the model writes whole methods
of the parent's ``Mixer`` (typically ``__init__`` and ``forward``), each replacing the parent's
method of that name or added to the class. A whole method must define every name it uses where
an edit could call a name it never defined (measured with the 1.5B model: edits called
``chunk_gated_delta_rule(q, k, v, g, beta)`` without its ``g`` again and again, and 0 of 9
answers with code passed the probes; with methods, 1 of 3 proposals passed them first time and
trained: the README's figures). ``edits`` stays the default until the recorded-answer tests and a
longer run cover ``methods`` as well.

The claimed origin is checked against what the answer cites: ``cognition`` must cite a
retrieved cognition entry, ``experience`` an experience entry; unknown ids are dropped and a
claim the citations do not support is recorded as ``original``, with the reason.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass, field, replace

from services.researcher.mind import Proposal, Reference
from services.runtime.llm import Exchange, LLMClient, LLMError
from services.runtime.projection import ArchitectureView

CHARS_PER_TOKEN = 3.5  # Qwen's tokenizer on Python and English, measured on our prompts
CONTEXT_TOKENS = 2800  # prompt budget: llama-server's default 4096 context minus the answer
ANSWER_TOKENS = 1024  # the measured edits answers took 141-587 tokens
PROPOSE_TEMPERATURE = 0.7
REPAIR_TEMPERATURE = 0.2
MAX_EDITS = 6
APPROXIMATE_MATCH = 0.85  # how alike a search text and the lines it replaces must be, when not equal

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "motivation": {"type": "string"},
        "origin": {"type": "string", "enum": ["cognition", "experience", "original"]},
        "cites": {"type": "array", "items": {"type": "string"}},
        "edits": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"search": {"type": "string"}, "replace": {"type": "string"}},
                "required": ["search", "replace"],
            },
            "minItems": 1,
            "maxItems": MAX_EDITS,
        },
    },
    "required": ["name", "motivation", "origin", "cites", "edits"],
}
REPAIR_SCHEMA = {
    "type": "object",
    "properties": {"cause": {"type": "string"}, "edits": SCHEMA["properties"]["edits"]},
    "required": ["cause", "edits"],
}
MAX_METHODS = 4
METHODS = {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}},
                                      "required": ["code"]},
           "minItems": 1, "maxItems": MAX_METHODS}
METHODS_SCHEMA = {
    "type": "object",
    "properties": {**{k: v for k, v in SCHEMA["properties"].items() if k != "edits"}, "methods": METHODS},
    "required": ["name", "motivation", "origin", "cites", "methods"],
}
REPAIR_METHODS_SCHEMA = {
    "type": "object",
    "properties": {"cause": {"type": "string"}, "methods": METHODS},
    "required": ["cause", "methods"],
}
ANSWER_FORMATS = ("edits", "methods")

CONTRACT = """The architecture contract (a file that breaks it is rejected before training):
- The file defines `class Mixer(nn.Module)` with `__init__(self, d_model: int, n_heads: int)`
  (more keyword arguments only with defaults) and `forward(self, x)` mapping x [B, T, d_model]
  to a tensor of the same shape, causally: output t may depend on inputs 0..t only.
- It may import only torch, math, einops and kernels. No file, network or process access.
- The cost must stay linear in T (no T x T attention over the whole sequence).
- Parameters stay near the parent's count (DeltaNet's budget).
The kernels API (flash-linear-attention conventions; every op returns (o, final_state)):
  q, k: [B, T, H, K]; v: [B, T, H, V]; beta: [B, T, H]; log-space decay g: [B, T, H] (<= 0)
  from kernels import chunk_linear_attn, chunk_delta_rule, chunk_gated_delta_rule
  chunk_linear_attn(q, k, v, g=None, scale=None)      # S = diag(exp(g)) S + k v^T
  chunk_delta_rule(q, k, v, beta, scale=None)          # S = (I - beta k k^T) S + beta k v^T
  chunk_gated_delta_rule(q, k, v, g, beta, scale=None) # exp(g) decay, then the delta rule
  o: [B, T, H, V]; use einops.rearrange(o, "b t h d -> b t (h d)") before the output projection."""

SYSTEM = f"""You are an ML researcher who designs linear-attention token mixers in PyTorch.
You change the PARENT file below with a few small edits that implement one design idea.
Answer with JSON only: name (a short new name), motivation (2-4 sentences: what changes and
why it should help the measured weaknesses), origin ("cognition" if a cited cognition entry
inspired it, "experience" if a cited experience entry did, else "original"), cites (ids of
the entries you used, may be empty), and edits: a list of {{"search": ..., "replace": ...}}
where each search is an exact, unique excerpt of the PARENT code (a few whole lines) and
replace is its new text. Keep the class name Mixer. Add any import your new code needs.
Every name your code uses must exist in the PARENT or be defined by your edits: a new variable
in forward needs its own line that computes it, a new self.<layer> needs its line in __init__.
If you borrow from a reference, borrow every line the borrowed code needs. A few small,
self-contained edits work best. The kernel functions take only the arguments listed below.
No Markdown fences.

{CONTRACT}"""

REPAIR_SYSTEM = f"""You fix PyTorch token-mixer files that failed a check.
Answer with JSON only: cause (one sentence: what in the code causes the error) and edits: a
list of {{"search": ..., "replace": ...}} where each search is an exact, unique excerpt of the
CURRENT code (a few whole lines) and replace is its corrected text. Fix the cause shown at the
marked line; keep the design idea; keep the class name Mixer. A name that is not defined needs a
line that defines it (copy it from the reference when the reference has it), placed before its
first use; search for that place by a whole line of the CURRENT code. No Markdown fences.

{CONTRACT}"""

METHODS_RULES = """methods: a list of {"code": ...}, each one complete method of class Mixer, from its
`def` line to its last line, never single lines: for example
"methods": [{"code": "def __init__(self, d_model: int, n_heads: int) -> None:\\n    super().__init__()\\n    ..."},
            {"code": "def forward(self, x):\\n    ...\\n    return out"}]
A method you write replaces the PARENT's method of that name; a new name adds a method. Write
every line of each method you change, not only the changed ones: a new layer goes into the whole
__init__, its use into the whole forward. Every name a method uses must be a parameter, a line of
that method that computes it, a self.<attribute> that __init__ sets, or an import of the file.
Keep the class name Mixer. No Markdown fences."""

SYSTEM_METHODS = f"""You are an ML researcher who designs linear-attention token mixers in PyTorch.
You change the PARENT file below by rewriting the methods of its class Mixer that one design idea
touches. Answer with JSON only: name (a short new name), motivation (2-4 sentences: what changes
and why it should help the measured weaknesses), origin ("cognition" if a cited cognition entry
inspired it, "experience" if a cited experience entry did, else "original"), cites (ids of the
entries you used, may be empty), and {METHODS_RULES}
The kernel functions take only the arguments listed below.

{CONTRACT}"""

REPAIR_SYSTEM_METHODS = f"""You fix PyTorch token-mixer files that failed a check.
Answer with JSON only: cause (one sentence: what in the code causes the error) and {METHODS_RULES}
Fix the cause shown at the marked line; keep the design idea.

{CONTRACT}"""

# Names the contract allows, and the import that binds each.
KNOWN_IMPORTS: dict[str, str] = {
    "torch": "import torch",
    "F": "import torch.nn.functional as F",
    "nn": "from torch import nn",
    "math": "import math",
    "rearrange": "from einops import rearrange",
    "repeat": "from einops import repeat",
    "einsum": "from einops import einsum",
    **{name: f"from kernels import {name}" for name in (
        "chunk_linear_attn", "chunk_delta_rule", "chunk_gated_delta_rule",
        "recurrent_linear_attn", "recurrent_delta_rule", "recurrent_gated_delta_rule")},
}
FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n?|\n?\s*```\s*$")
COMPONENTS_COMMENT = re.compile(r"^# asi-arch components:.*\n", re.MULTILINE)


class MindFailure(RuntimeError):
    """An exchange that produced no code: the LLM's failure kinds plus ``empty_code`` and
    ``edits_not_applied``. ``exchange`` holds what was sent and received."""

    def __init__(self, kind: str, message: str, exchange: Exchange) -> None:
        super().__init__(message)
        self.kind, self.exchange = kind, exchange


@dataclass(frozen=True)
class Draft:
    """A proposal the LLM wrote, with the exchange that wrote it."""

    proposal: Proposal
    exchange: Exchange
    fixes: tuple[str, ...] = ()
    origin_check: str = ""


@dataclass(frozen=True)
class Context:
    """What the prompt tells the model, most important first."""

    parent: ArchitectureView
    baseline: ArchitectureView | None
    references: list[Reference] = field(default_factory=list)
    siblings: list[ArchitectureView] = field(default_factory=list)
    # Reference architectures from the pool; the first is also shown as a diff against the parent, in
    # the parent's idiom where the researcher can render it (a genome), so the model sees working code
    # for a change (measured: without it, the 1.5B model invented keyword arguments of the kernels).
    others: list[ArchitectureView] = field(default_factory=list)
    avoid: str = ""  # why an earlier attempt of this idea was rejected as a duplicate


def body_of(code: str) -> str:
    """The code without its module docstring and the genome's component comment: what the model
    edits (the docstring is rewritten from the new motivation, and the component line would lie)."""
    code = COMPONENTS_COMMENT.sub("", code)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = code.splitlines(keepends=True)
        code = "".join(lines[first.end_lineno:])
    return code.lstrip("\n")


def with_docstring(name: str, motivation: str, body: str) -> str:
    text = f"{name}\n\n{motivation}".replace('"""', "'''").replace("\\", "\\\\")
    return f'"""{text}\n"""\n\n{body}'


def strip_fence(text: str) -> str:
    return FENCE.sub("", text)


def apply_edits(code: str, edits: list[dict], notes: list[str] | None = None) -> str:
    """``code`` with every ``{search, replace}`` applied in order; ``ValueError`` says which edit failed and why.
    An approximate match is noted in ``notes``."""
    for n, edit in enumerate(edits, start=1):
        search, replace = strip_fence(str(edit.get("search", ""))), strip_fence(str(edit.get("replace", "")))
        if not search.strip():
            raise ValueError(f"edit {n} has an empty search text")
        count = code.count(search)
        if count == 1:
            code = code.replace(search, replace, 1)
            continue
        # Small models search for a line such as "import torch", which is also the start of
        # "import torch.nn.functional as F": a unique match of whole lines settles it.
        located = _tolerant_find(code, search)
        if located is None and count > 1:
            raise ValueError(f"edit {n}: its search text occurs {count} times in the code; it must be unique "
                             f"(first line: {search.strip().splitlines()[0][:80]!r})")
        if located is None:
            located, ratio = _approximate_find(code, search)
            if located is not None and notes is not None:
                notes.append(f"edit {n} matched its lines approximately (similarity {ratio:.2f})")
        if located is None:
            raise ValueError(f"edit {n}: its search text does not occur in the code "
                             f"(first line: {search.strip().splitlines()[0][:80]!r})")
        start, end = located
        code = code[:start] + _reindented(replace, code[start:end], n, notes) + code[end:]
    return code


DEF_LINE = re.compile(r"^(?:async\s+)?def\s+(\w+)\s*\(")


CLASS_LINE = re.compile(r"^class\s+Mixer\b")
HELPER_LINE = re.compile(r"^class\s+(\w+)\s*[(:]")  # a module-level class the methods use
ATTRIBUTE_LINE = re.compile(r"^self\.\w+(\.\w+)*\s*(:[^=]+)?=")  # `self.x = ...`: a line of __init__'s body


def _top_level_end(lines: list[str], start: int) -> int:
    """The line after the module-level block that starts at ``start`` (trailing blank lines not included)."""
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()
                and not lines[i].lstrip().startswith("#")), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def _method_spans(lines: list[str]) -> tuple[dict[str, tuple[int, int]], str, int]:
    """The ``Mixer`` methods' line spans (decorators included, trailing blank lines not), the
    methods' indentation, and the line the class ends at. Read from the text, not a syntax tree,
    so that code which does not parse (a repair's) can still be rewritten method by method."""
    start = next((i for i, line in enumerate(lines) if CLASS_LINE.match(line)), None)
    if start is None:
        raise ValueError("the code has no class Mixer to put methods in")
    end = _top_level_end(lines, start)
    defs = [(i, m) for i in range(start + 1, end) if (m := re.match(r"^(\s+)(?:async\s+)?def\s+(\w+)\s*\(", lines[i]))]
    if not defs:
        raise ValueError("class Mixer has no methods to rewrite")
    indent = defs[0][1].group(1)
    heads = [(i, m.group(2)) for i, m in defs if m.group(1) == indent]
    spans = {}
    for k, (i, name) in enumerate(heads):
        first = i
        while first > start + 1 and lines[first - 1].startswith(indent + "@"):
            first -= 1
        last = heads[k + 1][0] if k + 1 < len(heads) else end
        while last > i + 1 and (not lines[last - 1].strip() or lines[last - 1].startswith(indent + "@")):
            last -= 1
        spans[name] = (first, last)
    return spans, indent, end


def method_texts(methods: list[dict], notes: list[str] | None = None) -> list[str]:
    """The answer's methods as whole ``def`` texts at column 0. Measured with the 1.5B model, and
    undone here, each noted: a method split over two items (the second does not start with ``def``:
    it continues the first), and the ``+``/``-`` markers of the prompt's reference diff copied into
    the code (a body line never starts at column 0, so a marker there is the diff's)."""
    texts: list[str] = []
    for n, method in enumerate(methods, start=1):
        text = textwrap.dedent(strip_fence(str(method.get("code", ""))).strip("\n"))
        if not text.strip():
            continue
        starts_item = DEF_LINE.match(text.lstrip()) or HELPER_LINE.match(text.lstrip()) or text.lstrip()[:1] == "@"
        if texts and not starts_item:
            texts[-1] = _joined(texts[-1], text, n, notes)
            continue
        texts.append(text)
    cleaned = []
    for n, text in enumerate(texts, start=1):
        head, *body = text.splitlines()
        if any(line.startswith(("+", "-")) for line in body):
            body = [line[1:] if line.startswith("+") else line for line in body if not line.startswith("-")]
            if notes is not None:
                notes.append(f"method {n}: a diff's +/- markers removed")
        closed = [_closed_string(line) for line in body]
        if closed != body and notes is not None:
            notes.append(f"method {n}: a string left open before the call's closing parenthesis closed")
        body = closed
        cleaned.append(textwrap.dedent("\n".join([head, *body])).strip("\n") + "\n")
    return cleaned


def _closed_string(line: str) -> str:
    """A line whose last argument string lost its closing quote, closed: measured with the 1.5B model,
    ``rearrange(o, 'b t h d -> b t (h d))`` for ``... (h d)')``. Only where the quote count is odd,
    the line ends in ``)``, and the string and the line both balance their parentheses once closed."""
    code = line.split("  #")[0].rstrip()
    for quote in ("'", '"'):
        if not code.endswith(")") or not _opens_string(code, quote):
            continue
        start = code.rindex(quote)
        inside = code[start + 1:-1]
        fixed = code[:-1] + quote + ")"
        if inside.count("(") == inside.count(")") and fixed.count("(") == fixed.count(")"):
            return fixed + line[len(code):]
    return line


def _opens_string(code: str, quote: str) -> bool:
    """Whether ``code`` leaves a ``quote`` string unterminated (a tokenizer error token, or its error)."""
    try:
        return any(t.type == tokenize.ERRORTOKEN and t.string == quote
                   for t in tokenize.generate_tokens(io.StringIO(code.strip()).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        return "unterminated string" in str(exc)


def _joined(previous: str, continuation: str, n: int, notes: list[str] | None) -> str:
    """A method split over several items, put back together at the method's body indentation.
    Measured with the 1.5B model: a part's first line at column 0 and its other lines indented as
    deep as the model's last line was (the body's, or a loop's inside it), and a part cut after a
    comma, mid-statement (``assert ..., `` with its message lost): the first line takes its
    neighbours' indentation, the part starts at the body's, and the dangling comma is dropped. A
    part with a diff's ``+``/``-`` markers is left as it is (``method_texts`` removes them)."""
    head, *body_lines = previous.rstrip("\n").splitlines()
    opens_block = DEF_LINE.match(head) or HELPER_LINE.match(head) or head.startswith("@")
    # Inside a def, the body's indentation; after lines of __init__ sent without one, theirs.
    body = next((_indent(line) for line in body_lines if line.strip()), "    ") if opens_block else _indent(head)
    lines = continuation.splitlines()
    if not any(line.startswith(("+", "-")) for line in lines):
        rest = [line for line in lines[1:] if line.strip()]
        inner = min((len(_indent(line)) for line in rest), default=0)
        if len(_indent(lines[0])) < inner:
            lines[0] = " " * inner + lines[0].lstrip(" ")
        lines = [body + line if line.strip() else line for line in textwrap.dedent("\n".join(lines)).splitlines()]
    last = previous.rstrip()
    if last.endswith(","):
        previous = last[:-1].rstrip() + "\n"
        if notes is not None:
            notes.append(f"method {n - 1} ends in a dangling comma: removed")
    if notes is not None:
        notes.append(f"method {n} continues method {n - 1}: joined")
    return previous.rstrip("\n") + "\n" + "\n".join(lines)


def apply_methods(code: str, methods: list[dict], notes: list[str] | None = None) -> str:
    """``code`` with each method (its whole ``def``) put in place of the ``Mixer`` method of that name,
    or added at the end of the class; ``ValueError`` says which method failed and why. A method that
    does not parse is still put in place, noted: the validity gate then names its error and line, and
    the repair round shows the model that line (a parse failure here would give it nothing to fix);
    the code itself need not parse either (a repair rewrites code that did not). A helper class
    (measured: the 1.5B model sent one as a method) goes at module level, before ``Mixer``, in place
    of a class of its name if there is one."""
    texts = method_texts(methods, notes)
    helpers = [text for text in texts if HELPER_LINE.match(text)]
    code = _with_helpers(code, helpers, notes)
    lines = code.splitlines(keepends=True)
    spans, indent, end_of_class = _method_spans(lines)
    texts = _with_init_statements(texts, lines, spans, notes)
    replaced: dict[str, str] = {}
    added: list[str] = []
    for n, text in enumerate(texts, start=1):
        if text in helpers:
            continue
        found = DEF_LINE.match(text.lstrip())
        if found is None:
            raise ValueError(f"method {n} does not start with `def` (first line: {text.splitlines()[0][:80]!r})")
        try:
            ast.parse(text)
        except SyntaxError as exc:
            if notes is not None:
                notes.append(f"method {n} ({found.group(1)}) does not parse (line {exc.lineno}: {exc.msg}): "
                             "put in place for the gate to name")
        placed = "".join(indent + line if line.strip() else line for line in text.splitlines(keepends=True))
        if found.group(1) in spans:
            replaced[found.group(1)] = placed
        else:
            added.append(placed)
    if lines and not lines[end_of_class - 1].endswith("\n"):
        lines[end_of_class - 1] += "\n"
    # Bottom up, so that every span still names its lines: the new methods after the class's last line.
    changes = [(end_of_class, end_of_class, "".join("\n" + text for text in added)),
               *((*spans[name], text) for name, text in replaced.items())]
    for start, end, text in sorted(changes, key=lambda change: -change[0]):
        lines[start:end] = [text]
    return "".join(lines)


def _with_init_statements(texts: list[str], lines: list[str], spans: dict[str, tuple[int, int]],
                          notes: list[str] | None) -> list[str]:
    """Items that are ``self.x = ...`` lines rather than methods (measured: the 1.5B model's most
    common misfit of this format) appended to ``__init__``: the answer's own, or else the parent's."""
    statements = [(n, text) for n, text in enumerate(texts, start=1) if ATTRIBUTE_LINE.match(text)]
    if not statements:
        return texts
    rest = [text for text in texts if not ATTRIBUTE_LINE.match(text)]
    place = next((i for i, text in enumerate(rest) if (m := DEF_LINE.match(text)) and m.group(1) == "__init__"), None)
    if place is None:
        if "__init__" not in spans:
            raise ValueError("the answer adds lines to __init__, and the code has no __init__ to add them to")
        start, end = spans["__init__"]
        rest.append(textwrap.dedent("".join(lines[start:end])))
        place = len(rest) - 1
    init = rest[place].rstrip("\n") + "\n"
    body = next((_indent(line) for line in init.splitlines()[1:] if line.strip()), "    ")
    rest[place] = init + "".join(textwrap.indent(text, body) for _, text in statements)
    if notes is not None:
        notes.append(f"item(s) {', '.join(str(n) for n, _ in statements)}: lines of __init__ without a def, "
                     "added at the end of __init__")
    return rest


def _with_helpers(code: str, helpers: list[str], notes: list[str] | None) -> str:
    for text in helpers:
        name = HELPER_LINE.match(text).group(1)  # type: ignore[union-attr]
        if name == "Mixer":
            raise ValueError("the answer rewrites class Mixer whole; send its methods, each a `def`")
        lines = code.splitlines(keepends=True)
        start = next((i for i, line in enumerate(lines) if re.match(rf"^class\s+{name}\b", line)), None)
        if start is not None:
            lines[start:_top_level_end(lines, start)] = [text]
        else:
            mixer = next((i for i, line in enumerate(lines) if CLASS_LINE.match(line)), None)
            if mixer is None:
                raise ValueError("the code has no class Mixer to put methods in")
            lines[mixer:mixer] = [text, "\n\n"]
        code = "".join(lines)
        if notes is not None:
            notes.append(f"helper class {name} put at module level"
                         + (" in place of its namesake" if start is not None else ", before Mixer"))
    return code


def _tolerant_find(code: str, search: str) -> tuple[int, int] | None:
    """The one span of whole lines equal to ``search``'s lines up to surrounding whitespace."""
    wanted = [line.strip() for line in search.strip("\n").splitlines()]
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    found = [i for i in range(len(lines) - len(wanted) + 1)
             if all(lines[i + j].strip() == wanted[j] for j in range(len(wanted)))]
    if len(found) != 1:
        return None
    i = found[0]
    # Keep the original line ending of the last line replaced.
    end = offsets[i + len(wanted)] - (1 if lines[i + len(wanted) - 1].endswith("\n") else 0)
    return offsets[i], end


def _indent(text: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first[: len(first) - len(first.lstrip())]


def _reindented(replace: str, replaced: str, n: int, notes: list[str] | None) -> str:
    """``replace`` shifted to the indentation of the lines it replaces, when the model dropped or
    added indentation (measured: an ``unexpected indent`` from a 0.5B edit). When only the first line
    lacks it and the lines after it already sit at or past the target (measured with the 1.5B model:
    a JSON string starts where the copied line's text starts), only the first line moves."""
    have, want = _indent(replace), _indent(replaced)
    if have == want or not replace.strip():
        return replace
    lines = replace.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.strip())
    rest = [line for line in lines[first + 1:] if line.strip()]
    if rest and all(_indent(line).startswith(want) for line in rest) and len(have) < len(want):
        lines[first] = want + lines[first].lstrip(" ")
        if notes is not None:
            notes.append(f"edit {n}: its first line re-indented to its place ({len(want)} spaces)")
        return "".join(lines)
    shifted = "".join(want + line[len(have):] if line.startswith(have) and line.strip() else
                      (want + line.lstrip(" ") if line.strip() else line) for line in lines)
    if notes is not None:
        notes.append(f"edit {n} re-indented to its place ({len(want)} spaces)")
    return shifted


def _approximate_find(code: str, search: str) -> tuple[tuple[int, int] | None, float]:
    """The one span of whole lines most like ``search`` (measured with the 0.5B model: it copies a
    line with a changed argument, ``self.q_conv(x)`` for ``self.q_conv(q)``), if clearly the best."""
    wanted = "\n".join(line.strip() for line in search.strip("\n").splitlines())
    size = len(search.strip("\n").splitlines())
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    searched = [line.strip() for line in search.strip("\n").splitlines()]
    # A miscopied argument is a slip; a line that binds another name is another line (measured: the
    # 1.5B model searched for the reference's `self.g_proj = ...`, which matched `self.v_proj = ...`).
    scored = sorted(((difflib.SequenceMatcher(None, "\n".join(x.strip() for x in lines[i:i + size]), wanted).ratio(),
                      i) for i in range(len(lines) - size + 1)
                     if all(_binding(a) == _binding(b) for a, b in zip(lines[i:i + size], searched, strict=True))),
                    reverse=True)
    if not scored or scored[0][0] < APPROXIMATE_MATCH or (len(scored) > 1 and scored[1][0] > scored[0][0] - 0.05):
        return None, 0.0
    ratio, i = scored[0]
    end = offsets[i + size] - (1 if lines[i + size - 1].endswith("\n") else 0)
    return (offsets[i], end), ratio


def _binding(line: str) -> str:
    """What a line assigns to (the text before a top-level ``=``), or "" when it assigns nothing."""
    text = line.strip()
    match = re.match(r"^([^=(\[{'\"]+?)\s*(?<![=!<>+\-*/%&|^])=(?!=)", text)
    return match.group(1).strip() if match else ""


def fix_imports(code: str) -> tuple[str, tuple[str, ...]]:
    """Add the import of each allowed name the code uses but never binds; alias a renamed Mixer."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, ()
    bound, used = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    missing = sorted(n for n in used - bound if n in KNOWN_IMPORTS)
    fixes = [f"added `{KNOWN_IMPORTS[n]}`" for n in missing]
    if missing:
        imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        lines = code.splitlines(keepends=True)
        at = imports[-1].end_lineno if imports else 0
        added = "".join(KNOWN_IMPORTS[n] + "\n" for n in missing)
        code = "".join(lines[:at]) + added + "".join(lines[at:])
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    if classes and "Mixer" not in {c.name for c in classes} and "Mixer" not in bound:
        renamed = classes[-1].name  # the file's last class is the mixer; helpers come before it
        code = code.rstrip("\n") + f"\n\n\nMixer = {renamed}  # the contract's name\n"
        fixes.append(f"aliased the renamed class {renamed} as Mixer")
    return code, tuple(fixes)


def error_context(code: str, failure: dict, lines_around: int = 3) -> str:
    """The failing line of ``code`` with its neighbours, the line marked; from the traceback's last
    frame in the candidate file, or a ``line N`` in the message."""
    text = f"{failure.get('traceback', '')}\n{failure.get('message', '')}"
    numbers = [int(n) for n in re.findall(r'candidate\.py", line (\d+)', text)]
    if not numbers:
        numbers = [int(n) for n in re.findall(r"\bline (\d+)", text)]
    if not numbers:
        return ""
    lines, target = code.splitlines(), numbers[-1]
    if not 1 <= target <= len(lines):
        return ""
    start, end = max(1, target - lines_around), min(len(lines), target + lines_around)
    return "\n".join(f"{'>>' if i == target else '  '} {i:4d} | {lines[i - 1]}" for i in range(start, end + 1))


def check_origin(claimed: str, cites: list[str], references: list[Reference]) -> tuple[str, tuple[str, ...], str]:
    """The origin the citations support, the citations kept, and a note when either was corrected."""
    by_id = {r.id: r for r in references}
    kept = tuple(dict.fromkeys(c for c in cites if c in by_id))
    notes = []
    dropped = [c for c in cites if c not in by_id]
    if dropped:
        notes.append(f"dropped citations of entries that were not retrieved: {', '.join(dropped)}")
    kinds = {by_id[c].kind for c in kept}
    origin = claimed if claimed in {"cognition", "experience", "original"} else "original"
    if origin in {"cognition", "experience"} and origin not in kinds:
        supported = "cognition" if "cognition" in kinds else "experience" if "experience" in kinds else "original"
        notes.append(f"claimed origin {claimed} but cites no {claimed} entry: recorded as {supported}")
        origin = supported
    if not notes:
        notes.append(f"origin {origin} agrees with the citations")
    return origin, kept, "; ".join(notes)


def _clip(text: str, tokens: int) -> str:
    limit = int(tokens * CHARS_PER_TOKEN)
    return text if len(text) <= limit else text[: max(0, limit - 4)] + " ..."


def _result_line(arch: ArchitectureView) -> str:
    if arch.result:
        bench = ", ".join(f"{k} {v:.2f}" for k, v in arch.result.get("benchmarks", {}).items())
        fitness = f"fitness {arch.fitness:.3f}, " if arch.fitness is not None else ""
        return f"{fitness}val_loss {arch.result['val_loss']:.3f}; accuracy {bench}"
    if arch.failure:
        return f"{arch.status}: {arch.failure.get('kind', '')}: {arch.failure.get('message', '')[:160]}"
    return arch.status


def reference_diff(parent: ArchitectureView, others: list[ArchitectureView]) -> str:
    """The first reference whose code differs from the parent's, as a unified diff against it: working
    code for a change, in a form a small model can borrow lines from; "" when there is none."""
    code = body_of(parent.code)
    shown = next((o for o in others if o.code and body_of(o.code) != code), None)
    if shown is None:
        return ""
    diff = difflib.unified_diff(code.splitlines(), body_of(shown.code).splitlines(), lineterm="", n=1)
    return (f"How the reference {shown.name} ({_result_line(shown)}) differs from the PARENT, as a unified "
            f"diff (- PARENT lines, + {shown.name} lines; working code you may borrow parts of):\n"
            + "\n".join(list(diff)[2:]))


def single_quoted(code: str) -> str:
    """``code`` with its one-line double-quoted strings in single quotes (same values). A methods
    answer carries code inside a JSON string, where a bare ``"`` ends the string: measured with the
    1.5B model under llama-server's JSON grammar, every ``__init__`` it copied stopped at the
    parent's ``assert ..., "widths must ..."``. Shown and edited in this style, the code it copies
    needs no escapes."""
    lines = code.splitlines(keepends=True)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return code  # code that does not tokenize is shown as it is (a repair's)
    for token in reversed(tokens):
        text = token.string
        prefix = text[: len(text) - len(text.lstrip("rRbBuUfF"))]
        body = text[len(prefix):]
        if (token.type != tokenize.STRING or token.start[0] != token.end[0] or not body.startswith('"')
                or body.startswith('"""') or "'" in body or "\\" in body):
            continue
        row, start, end = token.start[0] - 1, token.start[1], token.end[1]
        lines[row] = lines[row][:start] + prefix + "'" + body[1:-1] + "'" + lines[row][end:]
    return "".join(lines)


def _single_quoted_context(context: Context) -> Context:
    return replace(context, parent=replace(context.parent, code=single_quoted(context.parent.code)),
                   others=[replace(o, code=single_quoted(o.code)) for o in context.others])


def build_prompt(context: Context, budget_tokens: int = CONTEXT_TOKENS) -> str:
    """The user message: the parent first (always whole), then the evidence, each section clipped
    to what is left of the token budget."""
    parent = context.parent
    code = body_of(parent.code)
    sections = [f"PARENT {parent.name} ({parent.arch_id}): {_result_line(parent)}\n"
                f"PARENT code (edit this):\n{code}"]
    shown = reference_diff(parent, context.others)
    if shown:
        sections.append(shown)
    if context.baseline is not None and context.baseline.result and parent.result:
        weak = sorted(parent.result["benchmarks"].items(), key=lambda kv: kv[1])
        gaps = ", ".join(f"{task} {score:.2f}" for task, score in weak[:3])
        sections.append(f"Weakest capabilities of the parent (accuracy): {gaps}. Baseline "
                        f"{context.baseline.name}: {_result_line(context.baseline)}")
    if parent.analysis:
        sections.append(f"Analysis of the parent: {parent.analysis}")
    if context.avoid:
        sections.append(f"Do NOT repeat this: {context.avoid}. Choose a different idea.")
    if context.siblings:
        sections.append("Other children of this parent:\n" + "\n".join(
            f"- {s.name}: {s.mutation[:120] or s.motivation[:120]} -> {_result_line(s)}" for s in context.siblings))
    if context.references:
        sections.append("Retrieved entries (cite by id):\n" + "\n".join(
            f"- [{r.id}] ({r.kind}"
            f"{', outcome ' + r.outcome if r.outcome else ''}) {r.text[:300]}" for r in context.references))
    if context.others:
        sections.append("Other architectures in the pool:\n" + "\n".join(
            f"- {o.name}: {o.motivation[:160]} -> {_result_line(o)}" for o in context.others))
    left = budget_tokens - len(SYSTEM) / CHARS_PER_TOKEN
    kept = []
    for section in sections:
        if left <= 20:
            break
        clipped = section if section is sections[0] else _clip(section, int(left))
        kept.append(clipped)
        left -= len(clipped) / CHARS_PER_TOKEN
    return "\n\n".join(kept)


def build_repair_prompt(code: str, failure: dict, context: Context | None = None) -> str:
    """The failing code, its failure and the failing line; with the proposal's ``context``, also the
    reference's diff against the parent (measured: the 1.5B model called the reference's kernel but
    did not define its decay ``g``, and without the working lines in view could not repair it)."""
    body = body_of(code)
    where = error_context(body, failure)
    parts = [f"CURRENT code:\n{body}", f"It failed: {failure.get('kind', '')}: {failure.get('message', '')[:600]}"]
    if where:
        parts.append(f"The failing line (marked >>) and its context:\n{where}")
    elif failure.get("traceback"):
        parts.append(f"Traceback excerpt:\n{failure['traceback'][-800:]}")
    shown = reference_diff(context.parent, context.others) if context is not None else ""
    if shown:
        parts.append(shown.replace("differs from the PARENT", "differs from the code this one was derived from"))
    return "\n\n".join(parts)


class LLMMind:
    """Writes proposals and repairs through an ``LLMClient``; every exchange comes back with the result."""

    def __init__(self, client: LLMClient, *, seed: int = 0, context_tokens: int = CONTEXT_TOKENS,
                 answer_format: str = "edits") -> None:
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer format {answer_format!r}: use one of {', '.join(ANSWER_FORMATS)}")
        self.client, self.seed, self.context_tokens = client, seed, context_tokens
        self.answer_format = answer_format

    @property
    def label(self) -> str:
        return self.client.label

    async def propose(self, context: Context, *, attempt: int = 1) -> Draft:
        """A child of ``context.parent``; ``attempt`` varies the sampling seed, so a retry is a new draw."""
        methods = self.answer_format == "methods"
        if methods:
            context = _single_quoted_context(context)
        exchange = await self._ask(SYSTEM_METHODS if methods else SYSTEM, build_prompt(context, self.context_tokens),
                                   "mixer_methods" if methods else "mixer_edits",
                                   METHODS_SCHEMA if methods else SCHEMA, PROPOSE_TEMPERATURE, attempt)
        answer = exchange.answer
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", answer["name"].strip())[:60] or f"{context.parent.name}-llm"
        code, fixes = self._edit(body_of(context.parent.code), answer, exchange)
        origin, cites, note = check_origin(answer["origin"], [str(c) for c in answer["cites"]], context.references)
        motivation = answer["motivation"].strip()
        proposal = Proposal(
            name=name, motivation=motivation, code=with_docstring(name, motivation, code), components={},
            origin=origin, citations=cites,
            mutation=f"LLM {self.answer_format} of {context.parent.name}: "
                     f"{len(answer['methods' if methods else 'edits'])} {'method' if methods else 'edit'}(s)")
        return Draft(proposal, exchange, fixes, note)

    async def repair(self, arch_id: str, failed: Proposal, failure: dict, *, attempt: int = 1,
                     context: Context | None = None) -> Draft:
        """Edits of ``failed`` (proposal ``arch_id``) that answer ``failure`` ({kind, message, traceback});
        ``context``, the one the proposal was written in, when the researcher still has it."""
        methods = self.answer_format == "methods"
        if methods:
            failed = replace(failed, code=single_quoted(failed.code))
            context = _single_quoted_context(context) if context is not None else None
        exchange = await self._ask(REPAIR_SYSTEM_METHODS if methods else REPAIR_SYSTEM,
                                   build_repair_prompt(failed.code, failure, context), "mixer_repair",
                                   REPAIR_METHODS_SCHEMA if methods else REPAIR_SCHEMA, REPAIR_TEMPERATURE, attempt)
        answer = exchange.answer
        code, fixes = self._edit(body_of(failed.code), answer, exchange)
        cause = answer["cause"].strip()[:300]
        # The motivation stays the idea's own: a repair fixes code, and the novelty gate compares ideas.
        motivation = failed.motivation.split("\n\nRepair after ")[0]
        proposal = Proposal(
            name=failed.name, motivation=motivation, code=with_docstring(failed.name, motivation, code),
            components={}, origin=failed.origin, citations=failed.citations,
            mutation=f"LLM repair of {arch_id} after {failure.get('kind', '')}: {cause}")
        return Draft(proposal, exchange, fixes, "repair: origin and citations of the repaired proposal")

    async def _ask(self, system: str, user: str, schema_name: str, schema: dict, temperature: float,
                   attempt: int) -> Exchange:
        try:
            return await self.client.ask_json(system, user, schema_name=schema_name, schema=schema,
                                              temperature=temperature, max_tokens=ANSWER_TOKENS,
                                              seed=self.seed * 1009 + attempt)
        except LLMError as exc:
            raise MindFailure(exc.kind, str(exc), exc.exchange or Exchange("", "", {})) from exc

    def _edit(self, code: str, answer: dict, exchange: Exchange) -> tuple[str, tuple[str, ...]]:
        """The answer's edits or methods applied to ``code``, with the allowed imports it lacks."""
        what = self.answer_format
        if what == "methods":
            items = [m for m in answer["methods"] if isinstance(m, dict) and str(m.get("code", "")).strip()]
            has_code, apply, limit = bool(items), apply_methods, MAX_METHODS
        else:
            items = [e for e in answer["edits"] if isinstance(e, dict)]
            has_code = bool(items) and not all(not strip_fence(str(e.get("replace", ""))).strip()
                                               and not str(e.get("search", "")).strip() for e in items)
            apply, limit = apply_edits, MAX_EDITS
        if not has_code:
            raise MindFailure("empty_code", f"the answer holds no {what} with code", exchange)
        notes: list[str] = []
        try:
            changed = apply(code, items[:limit], notes)
        except ValueError as exc:
            raise MindFailure("edits_not_applied", str(exc), exchange) from exc
        if changed.strip() == code.strip():
            raise MindFailure("empty_code", f"the {what} leave the code unchanged", exchange)
        fixed, fixes = fix_imports(changed)
        return fixed, (*notes, *fixes)
