"""The LLM mind: its engineering around a small model (edits, fences, imports, the error's line,
the origin check, the prompt's budget), and every malformed-answer kind, through the real
``AsyncOpenAI`` client against tests/recorded_llm.py's local OpenAI-compatible server.

Answers: ``propose-applied.json``, ``propose-approximate.json`` (renamed from the arch ids
``tests/record_llm_answers.py --from-log`` names them by) and ``truncated.json`` are real
Qwen2.5-Coder-0.5B answers (tests/record_llm_answers.py). The refusal, the malformed JSON, the
empty edits and the edit that misses are real answers altered by hand, as named in each test;
the HTTP 500, the delay and the stopped server are the server's own behaviour."""

from __future__ import annotations

import ast
import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from services.researcher import gates
from services.researcher.llm_mind import (
    CHARS_PER_TOKEN,
    SYSTEM,
    Context,
    LLMMind,
    MindFailure,
    apply_edits,
    apply_methods,
    body_of,
    build_prompt,
    build_repair_prompt,
    check_origin,
    error_context,
    fix_imports,
    single_quoted,
)
from services.researcher.mind import Reference
from services.runtime.llm import LLMClient
from tests.record_llm_answers import REFERENCES, recorded_parent, reference_gated_deltanet, seed_parent
from tests.recorded_llm import RecordedAnswerServer, completion, delayed, http_error, load

PARENT = recorded_parent()
CONTEXT = Context(PARENT, PARENT, REFERENCES)


RECORDED = Path(__file__).resolve().parents[1] / "recorded" / "llm-mind"


def real_answer() -> dict:
    """A real proposal of the 0.5B model (run run-b0ce1f2a4767) whose edits apply to the seed exactly."""
    return load("llm-mind/propose-applied.json")


def with_content(answer: dict, content: str, **changes: str) -> dict:
    answer["choices"][0]["message"]["content"] = content
    answer["choices"][0].update(changes)
    return answer


def propose(answers: object, *, timeout_s: float = 30.0, stop_first: bool = False):
    with RecordedAnswerServer({"mixer_edits": answers}) as server:  # type: ignore[dict-item]
        if stop_first:
            server.stop()
        mind = LLMMind(LLMClient(server.base_url, "recorded-model", timeout_s=timeout_s))
        return asyncio.run(mind.propose(CONTEXT)), server.requests


# -- the engineering ------------------------------------------------------------------------------

def test_edits_apply_in_order_and_fences_are_stripped() -> None:
    code = "a = 1\nb = 2\nc = 3\n"
    edited = apply_edits(code, [{"search": "```python\nb = 2\n```", "replace": "b = 20"}, {"search": "c = 3",
                                                                                           "replace": "c = b"}])
    assert edited == "a = 1\nb = 20\nc = b\n"


def test_an_edit_that_misses_or_is_ambiguous_says_which_and_why() -> None:
    with pytest.raises(ValueError, match=r"edit 2: its search text does not occur in the code \(first line: 'zz'\)"):
        apply_edits("x = 1\n", [{"search": "x = 1", "replace": "x = 2"}, {"search": "zz", "replace": "y"}])
    with pytest.raises(ValueError, match="edit 1: its search text occurs 2 times"):
        apply_edits("x = 1\nx = 1\n", [{"search": "x = 1", "replace": "x = 2"}])


def test_a_search_that_also_starts_another_line_matches_the_whole_line() -> None:
    # Measured with the 0.5B model: it searched for "import torch" in a file that also imports
    # torch.nn.functional; as a substring that occurs twice, as a whole line once.
    code = "import torch\nimport torch.nn.functional as F\n"
    assert apply_edits(code, [{"search": "import torch", "replace": "import torch\nimport math"}]) == (
        "import torch\nimport math\nimport torch.nn.functional as F\n")


def test_an_edit_matches_despite_indentation_drift() -> None:
    code = "class A:\n    def f(self):\n        return 1\n"
    assert apply_edits(code, [{"search": "def f(self):\n  return 1", "replace": "    def f(self):\n        return 2"}]
                       ) == "class A:\n    def f(self):\n        return 2\n"


def test_an_approximate_match_never_replaces_a_line_that_binds_another_name() -> None:
    code = "class A:\n    def __init__(self):\n        self.v_proj = nn.Linear(4, 4)\n        self.o = 1\n"
    # Measured with the 1.5B model: the reference's line, absent here, one letter from v_proj's.
    with pytest.raises(ValueError, match="edit 1: its search text does not occur"):
        apply_edits(code, [{"search": "self.g_proj = nn.Linear(4, 4)", "replace": "self.g_proj = nn.Linear(4, 8)"}])
    # A miscopied argument on the same binding is still a slip that matches.
    notes: list[str] = []
    slip = {"search": "self.v_proj = nn.Linear(4, 5)", "replace": "self.v_proj = nn.Linear(4, 6)"}
    edited = apply_edits(code, [slip], notes)
    assert "self.v_proj = nn.Linear(4, 6)" in edited and "approximately" in notes[0]


def test_a_replace_whose_first_line_lacks_the_indentation_moves_only_that_line() -> None:
    code = "class A:\n    def f(self):\n        a = 1\n        return a\n"
    notes: list[str] = []
    # Measured with the 1.5B model: the JSON string starts at the copied line's text; the lines it adds
    # after it carry their full indentation.
    edited = apply_edits(code, [{"search": "a = 1\nreturn a", "replace": "a = 1\n        b = 2\n        return a + b"}],
                         notes)
    assert edited == "class A:\n    def f(self):\n        a = 1\n        b = 2\n        return a + b\n"
    assert notes == ["edit 1: its first line re-indented to its place (8 spaces)"]


def test_missing_allowed_imports_are_added_and_a_renamed_mixer_is_aliased() -> None:
    code = ("from torch import nn\n\n\nclass Recall(nn.Module):\n    def forward(self, x):\n"
            "        o, _ = chunk_gated_delta_rule(x, x, x, torch.zeros(1), F.sigmoid(x))\n        return o\n")
    fixed, fixes = fix_imports(code)
    assert "import torch\n" in fixed and "import torch.nn.functional as F\n" in fixed
    assert "from kernels import chunk_gated_delta_rule\n" in fixed and fixed.rstrip().endswith("Mixer = Recall  # the "
                                                                                                 "contract's name")
    assert len(fixes) == 4 and gates.contract_failure(fixed) is None
    assert fix_imports(fixed)[1] == ()  # nothing left to fix


def test_the_failing_line_is_shown_with_its_context() -> None:
    code = "\n".join(f"line{i}" for i in range(1, 11))
    shown = error_context(code, {"traceback": 'File "candidate.py", line 2, in f\nFile "candidate.py", line 6, in g',
                                 "message": ""})
    assert ">>    6 | line6" in shown and "     3 | line3" in shown and "line10" not in shown
    assert error_context(code, {"message": "line 9: invalid syntax", "traceback": ""}).count(">>") == 1


def test_the_claimed_origin_is_checked_against_the_citations() -> None:
    refs = [Reference("lit-1", "cognition", (), "t", 0.5), Reference("exp-1", "experience", (), "t", 0.5)]
    assert check_origin("cognition", ["lit-1"], refs)[:2] == ("cognition", ("lit-1",))
    origin, cites, note = check_origin("cognition", ["exp-1", "made-up"], refs)
    assert (origin, cites) == ("experience", ("exp-1",))
    assert "made-up" in note and "claimed origin cognition but cites no cognition entry" in note
    assert check_origin("experience", [], refs)[0] == "original"


def test_the_prompt_keeps_the_parent_whole_and_the_rest_within_the_budget() -> None:
    many = [Reference(f"lit-{i}", "cognition", (), "an insight about recall " * 30, 0.5) for i in range(40)]
    prompt = build_prompt(Context(PARENT, PARENT, many), budget_tokens=1600)
    assert body_of(PARENT.code) in prompt and "Weakest capabilities" in prompt
    assert (len(prompt) + len(SYSTEM)) / CHARS_PER_TOKEN <= 1600 + 10
    assert "lit-39" not in prompt  # clipped


def test_the_prompt_shows_a_reference_of_the_pool_as_a_diff_against_the_parent() -> None:
    reference = reference_gated_deltanet()
    prompt = build_prompt(Context(seed_parent(), seed_parent(), REFERENCES, others=[reference]))
    shown = prompt.split("How the reference gated-deltanet")[1].split("\n\n")[0]
    # Only what differs, as working code: the decay's gate and the kernel that takes it.
    assert "+        o, _ = chunk_gated_delta_rule(q, k, v, g, beta)" in shown
    assert "-        o, _ = chunk_delta_rule(q, k, v, beta)" in shown
    assert "self.q_proj = nn.Linear" not in shown  # a line both share stays out
    assert build_prompt(Context(seed_parent(), seed_parent(), REFERENCES)).count("How the reference") == 0


def test_a_repair_prompt_shows_the_references_working_code_when_the_context_is_known() -> None:
    failure = {"kind": "runtime_error", "message": "NameError: name 'g' is not defined", "traceback": ""}
    broken = seed_parent().code.replace("chunk_delta_rule(q, k, v, beta)", "chunk_gated_delta_rule(q, k, v, g, beta)")
    context = Context(seed_parent(), seed_parent(), REFERENCES, others=[reference_gated_deltanet()])
    with_reference = build_repair_prompt(broken, failure, context)
    assert "+        g = -self.A_log.exp() * dt" in with_reference and "NameError" in with_reference
    assert "How the reference" not in build_repair_prompt(broken, failure)


# -- a real answer, and every malformed kind ------------------------------------------------------

def test_a_real_answer_becomes_a_proposal_with_its_exchange_and_usage() -> None:
    answer = real_answer()
    draft, requests = propose(answer)
    sent = requests[0]
    assert sent["response_format"]["type"] == "json_schema" and sent["response_format"]["json_schema"]["name"] == \
        "mixer_edits"
    assert body_of(PARENT.code) in sent["messages"][1]["content"]
    assert draft.exchange.prompt_tokens == answer["usage"]["prompt_tokens"]
    assert draft.exchange.completion_tokens == answer["usage"]["completion_tokens"]
    assert draft.exchange.response == answer["choices"][0]["message"]["content"]
    assert "class Mixer" in draft.proposal.code and draft.proposal.code.startswith('"""')
    assert "# asi-arch components" not in draft.proposal.code  # the genome's line would lie about LLM code
    assert draft.proposal.origin in {"cognition", "experience", "original"} and draft.origin_check


def test_a_real_answer_that_miscopies_a_line_applies_by_approximate_match() -> None:
    draft, _ = propose(load("llm-mind/propose-approximate.json"))  # real: searched `self.q_conv(x)`
    assert any("matched its lines approximately" in fix for fix in draft.fixes)


def test_a_truncated_answer_is_a_truncated_failure() -> None:
    with pytest.raises(MindFailure) as failure:
        propose(load("llm-mind/truncated.json"))  # real: the same request with max_tokens=40
    assert failure.value.kind == "truncated" and "token limit" in str(failure.value)
    assert failure.value.exchange.completion_tokens > 0 and failure.value.exchange.prompt


@pytest.mark.parametrize(("content", "kind", "words"), [
    ('{"name": "x", "motivation": "m", "origin": "original", "cites": [], "edits": [{"search": "a"', "malformed",
     "not JSON"),
    ("I'm sorry, but I can't help with designing that.", "refusal", "declined"),
    ('{"name": "x", "motivation": "m", "origin": "original", "cites": [], "edits": []}', "empty_code", "no edits"),
    ('{"name": "x", "motivation": "m", "cites": [], "edits": [{"search": "a", "replace": "b"}]}', "malformed",
     "lacks 'origin'"),
    ("", "malformed", "empty"),
])
def test_a_malformed_answer_is_a_failure_of_its_kind(content: str, kind: str, words: str) -> None:
    with pytest.raises(MindFailure) as failure:
        propose(with_content(real_answer(), content))
    assert failure.value.kind == kind and words in str(failure.value)
    assert failure.value.exchange.response == content and failure.value.exchange.prompt


def test_an_edit_that_does_not_apply_is_a_clear_failure() -> None:
    answer = real_answer()
    content = json.loads(answer["choices"][0]["message"]["content"], strict=False)
    content["edits"][0]["search"] = "self.no_such_layer = nn.Identity()"  # the real answer, one search altered
    with pytest.raises(MindFailure) as failure:
        propose(with_content(answer, json.dumps(content)))
    assert failure.value.kind == "edits_not_applied" and "edit 1: its search text does not occur" in str(failure.value)


def test_http_500_a_timeout_and_a_server_that_is_down_are_failures_of_their_kind() -> None:
    with pytest.raises(MindFailure) as failure:
        propose(http_error(500, "model crashed"))
    assert failure.value.kind == "http_error" and "HTTP 500" in str(failure.value)
    with pytest.raises(MindFailure) as failure:
        propose(delayed(5, completion("{}")), timeout_s=1)
    assert failure.value.kind == "timeout"
    with pytest.raises(MindFailure) as failure:
        propose(real_answer(), stop_first=True)
    assert failure.value.kind == "unreachable"


@pytest.mark.parametrize(("search", "replace", "kind"), [
    ("class Mixer(nn.Module):", "import os\n\n\nclass Mixer(nn.Module):", "forbidden_import"),
    ("class Mixer(nn.Module):", "class Recall(nn.Module):\n    pass\n\n\ndef Mixer():\n    return Recall\n\n\nclass "
                                "Unused(nn.Module):", "no_mixer"),
])
def test_code_with_a_forbidden_import_or_no_mixer_is_stopped_by_the_validity_gate(search: str, replace: str,
                                                                                  kind: str) -> None:
    answer = real_answer()  # the real answer with one more edit, added by hand
    content = json.loads(answer["choices"][0]["message"]["content"], strict=False)
    content["edits"].append({"search": search, "replace": replace})
    draft, _ = propose(with_content(answer, json.dumps(content)))
    verdict, fingerprint = asyncio.run(gates.validity(draft.proposal.code, "tiny"))
    assert verdict is not None and verdict.failure_kind == kind and fingerprint == ""


# -- the methods answer format ----------------------------------------------------------------------

MIXER = ("import torch\nfrom torch import nn\n\n\nclass Mixer(nn.Module):\n"
         "    def __init__(self, d_model: int, n_heads: int) -> None:\n        super().__init__()\n"
         "        self.proj = nn.Linear(d_model, d_model)\n\n"
         "    def forward(self, x):\n        return self.proj(x)\n")


def test_a_method_replaces_its_namesake_whole_and_a_new_one_is_added() -> None:
    rewritten = apply_methods(MIXER, [
        {"code": "```python\ndef forward(self, x):\n    y = self.proj(x)\n    return y * self.gate(x)\n```"},
        {"code": "    def gate(self, x):\n        return torch.sigmoid(x)\n"},  # indented as in the class
    ])
    assert "return self.proj(x)" not in rewritten and "        return y * self.gate(x)\n" in rewritten
    assert "    def gate(self, x):\n        return torch.sigmoid(x)\n" in rewritten
    assert rewritten.count("def __init__") == 1 and rewritten.index("def forward") < rewritten.index("def gate")
    namespace: dict = {}
    exec(compile(rewritten, "candidate.py", "exec"), namespace)
    out = namespace["Mixer"](8, 2)(torch.ones(1, 3, 8))
    assert out.shape == (1, 3, 8)


def test_a_method_without_def_is_a_clear_failure_and_one_that_does_not_parse_goes_to_the_gate() -> None:
    with pytest.raises(ValueError, match="method 1 does not start with `def`"):
        apply_methods(MIXER, [{"code": "return self.proj(x) * 2"}])
    notes: list[str] = []
    broken = apply_methods(MIXER, [{"code": "def forward(self, x):\n    return (\n"}], notes)
    assert "    def forward(self, x):\n        return (\n" in broken  # in place: the gate names the line
    assert any("method 1 (forward) does not parse" in note for note in notes)
    assert gates.contract_failure(broken)["kind"] == "syntax_error"


def test_a_helper_class_goes_to_module_level_and_a_whole_mixer_class_is_refused() -> None:
    # Measured with the 1.5B model: a helper module sent as one of the methods.
    helper = ("class Gate(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
              "        self.lin = nn.Linear(d, d)\n\n    def forward(self, x):\n"
              "        return torch.sigmoid(self.lin(x))\n")
    init = ("def __init__(self, d_model: int, n_heads: int) -> None:\n    super().__init__()\n"
            "    self.proj = nn.Linear(d_model, d_model)\n    self.gate = Gate(d_model)")
    notes: list[str] = []
    rewritten = apply_methods(MIXER, [{"code": init}, {"code": helper},
                                      {"code": "def forward(self, x):\n    return self.proj(x) * self.gate(x)"}], notes)
    assert rewritten.index("class Gate(nn.Module):") < rewritten.index("class Mixer(nn.Module):")
    assert notes == ["helper class Gate put at module level, before Mixer"]
    namespace: dict = {}
    exec(compile(rewritten, "candidate.py", "exec"), namespace)
    mixer = namespace["Mixer"](8, 2)
    assert mixer(torch.ones(1, 3, 8)).shape == (1, 3, 8) and isinstance(mixer.gate, namespace["Gate"])
    # A second answer that rewrites the helper replaces it rather than defining it twice.
    again = apply_methods(rewritten, [{"code": helper.replace("torch.sigmoid", "torch.tanh")}])
    assert again.count("class Gate") == 1 and "torch.tanh(self.lin(x))" in again
    with pytest.raises(ValueError, match="rewrites class Mixer whole"):
        apply_methods(MIXER, [{"code": "class Mixer(nn.Module):\n    pass\n"}])


def test_an_init_split_mid_statement_by_the_real_model_is_joined_into_code_that_parses() -> None:
    # The 1.5B model's answer, as the run logged it: __init__ cut after `assert ..., ` and continued in
    # the next item, whose first line is at column 0 and the rest at the body's indentation.
    recorded = json.loads((RECORDED / "split-init-methods.json").read_text())
    notes: list[str] = []
    code = apply_methods(seed_parent().code, recorded["methods"], notes)
    assert notes == ["method 1 ends in a dangling comma: removed", "method 2 continues method 1: joined"]
    assert gates.contract_failure(code) is None  # it parses now; what is left is the model's own error,
    namespace: dict = {}  # a module it uses and never imports, for the repair round to fix
    exec(compile(code, "candidate.py", "exec"), namespace)
    with pytest.raises(NameError, match="name 'math' is not defined"):
        namespace["Mixer"](64, 2)
    assert "        self.a_proj = nn.Linear(d_model, self.n_heads, bias=False)" in code  # at the body's indent
    # Another answer of the same run: __init__ in four parts, each later part's lines as deep as the
    # model's last line (12 spaces after a loop), each first line at column 0.
    again = json.loads((RECORDED / "split-init-methods-2.json").read_text())
    code = apply_methods(seed_parent().code, again["methods"])
    assert gates.contract_failure(code) is None
    assert "\n        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)\n" in code
    assert "\n        dt = torch.exp(" in code
    # Lines of __init__ without a def, one statement per item: they continue one another at their own
    # indentation, and go to the end of __init__ together (the same run, proposal arch-c2312768ea65).
    lines = ["self.A_log = nn.Parameter(torch.empty(self.n_heads).uniform_(1.0, 16.0).log())",
             "dt = torch.exp(torch.empty(self.n_heads).uniform_(math.log(0.001), math.log(0.1))).clamp(min=1e-4)",
             "self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))"]
    code = apply_methods(seed_parent().code, [{"code": line} for line in lines])
    assert gates.contract_failure(code) is None
    assert all(f"\n        {line}\n" in code for line in lines)


def test_code_is_shown_for_a_methods_answer_with_strings_that_need_no_json_escape() -> None:
    seed = seed_parent().code
    shown = single_quoted(seed)
    assert '"widths must split evenly into heads"' in seed
    assert "'widths must split evenly into heads'" in shown and "rearrange(q, 'b t (h d) -> b t h d'" in shown
    assert ast.dump(ast.parse(shown)) == ast.dump(ast.parse(seed))  # the same program
    assert shown.count('"""') == seed.count('"""')  # docstrings stay as they are
    assert single_quoted('x = "it\'s"\n') == 'x = "it\'s"\n'  # a quote inside: left alone
    assert single_quoted("def broken(:\n") == "def broken(:\n"


def test_a_pattern_string_left_open_before_the_closing_parenthesis_is_closed() -> None:
    # Measured with the 1.5B model, three proposals of one run: the einops pattern's closing quote lost.
    forward = ("def forward(self, x):\n    o = rearrange(x, 'b t (h d) -> b t h d', h=2)\n"
               "    o = rearrange(o, 'b t h d -> b t (h d))  # back\n    return self.proj(o)")
    notes: list[str] = []
    code = apply_methods(MIXER.replace("import torch\n", "import torch\nfrom einops import rearrange\n"),
                         [{"code": forward}], notes)
    assert "        o = rearrange(o, 'b t h d -> b t (h d)')  # back\n" in code
    assert notes == ["method 1: a string left open before the call's closing parenthesis closed"]
    namespace: dict = {}
    exec(compile(code, "candidate.py", "exec"), namespace)
    assert namespace["Mixer"](8, 2)(torch.ones(1, 3, 8)).shape == (1, 3, 8)
    # A line whose strings balance, or whose repair would not balance, is left as it is.
    for line in ("return self.proj(x)  # it's fine", "return self.proj(x) * len(\"it's\")"):
        assert f"        {line}\n" in apply_methods(MIXER, [{"code": f"def forward(self, x):\n    {line}"}])


def test_lines_of_init_sent_without_a_def_are_added_to_init() -> None:
    # Measured with the 1.5B model: `self.A_log = nn.Parameter(...)` as a "method", no def around it.
    notes: list[str] = []
    rewritten = apply_methods(MIXER, [{"code": "self.scale = nn.Parameter(torch.ones(1))"},
                                      {"code": "def forward(self, x):\n    return self.proj(x) * self.scale"}], notes)
    assert "        self.proj = nn.Linear(d_model, d_model)\n        self.scale = nn.Parameter(torch.ones(1))\n" \
        in rewritten
    assert notes == ["item(s) 1: lines of __init__ without a def, added at the end of __init__"]
    namespace: dict = {}
    exec(compile(rewritten, "candidate.py", "exec"), namespace)
    mixer = namespace["Mixer"](8, 2)
    assert mixer(torch.ones(1, 3, 8)).shape == (1, 3, 8) and mixer.scale.shape == (1,)
    # Beside the answer's own __init__, the lines go at its end. (After another item they continue it.)
    own = apply_methods(MIXER, [{"code": "self.scale = nn.Parameter(torch.ones(1))"},
                                {"code": "def __init__(self, d_model, n_heads):\n    super().__init__()\n"
                                         "    self.proj = nn.Identity()"},
                                {"code": "def forward(self, x):\n    return self.proj(x) * self.scale"}])
    assert "        self.proj = nn.Identity()\n        self.scale = nn.Parameter(torch.ones(1))\n" in own


def test_a_split_method_is_joined_and_copied_diff_markers_are_removed() -> None:
    # Measured with the 1.5B model: __init__ split over two items, and the reference diff's +/- lines.
    notes: list[str] = []
    rewritten = apply_methods(MIXER, [
        {"code": "def __init__(self, d_model: int, n_heads: int) -> None:\n    super().__init__()"},
        {"code": "    self.proj = nn.Linear(d_model, d_model)\n+    self.scale = nn.Parameter(torch.ones(1))"},
        {"code": "def forward(self, x):\n-    return self.proj(x)\n+    return self.proj(x) * self.scale"},
    ], notes)
    assert "        self.scale = nn.Parameter(torch.ones(1))\n" in rewritten
    assert "return self.proj(x) * self.scale" in rewritten and "return self.proj(x)\n" not in rewritten
    assert notes == ["method 2 continues method 1: joined", "method 1: a diff's +/- markers removed",
                     "method 2: a diff's +/- markers removed"]
    namespace: dict = {}
    exec(compile(rewritten, "candidate.py", "exec"), namespace)
    assert namespace["Mixer"](8, 2)(torch.ones(1, 3, 8)).shape == (1, 3, 8)


def test_the_methods_format_asks_for_methods_and_answers_become_a_proposal() -> None:
    answer = with_content(real_answer(), json.dumps({
        "name": "delta-out-gate", "motivation": "An output gate computed from the input.", "origin": "original",
        "cites": [], "methods": [{"code": "def forward(self, x):\n    return self.proj(x) * torch.sigmoid(x)\n"}]}))
    with RecordedAnswerServer({"mixer_methods": [answer]}) as server:
        mind = LLMMind(LLMClient(server.base_url, "recorded-model", timeout_s=30), answer_format="methods")
        parent = Context(replace(PARENT, code=MIXER), None)
        draft = asyncio.run(mind.propose(parent))
    assert "return self.proj(x) * torch.sigmoid(x)" in draft.proposal.code
    assert draft.proposal.mutation.startswith("LLM methods of") and "1 method(s)" in draft.proposal.mutation
    assert "methods" in json.dumps(server.requests[0]["response_format"])
    with pytest.raises(ValueError, match="answer format"):
        LLMMind(LLMClient(server.base_url, "m"), answer_format="files")


def test_a_repair_rewrites_methods_of_code_that_does_not_parse() -> None:
    # Measured: the 1.5B model's __init__ ended inside an assert; its repair must still find forward.
    broken = MIXER.replace("        self.proj = nn.Linear(d_model, d_model)\n",
                           "        assert d_model % n_heads == 0, \n        self.proj = nn.Linear(d_model, d_model)\n")
    repaired = apply_methods(broken, [{"code": "def __init__(self, d_model: int, n_heads: int) -> None:\n"
                                               "    super().__init__()\n    self.proj = nn.Linear(d_model, d_model)"}])
    assert repaired == MIXER
    with pytest.raises(ValueError, match="no class Mixer"):
        apply_methods("x = (\n", [{"code": "def forward(self, x):\n    return x"}])
