"""``asi-arch check | train | baselines``: the engineer on one file, or on the baselines.

With ``--json`` each prints one JSON object on stdout; progress goes to stderr.  Exit codes:
0 when the candidate passed, 1 when it failed, 2 for a usage error (argparse's own, a missing
file or an unknown profile).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from services.engineer.baselines import BASELINES
from services.engineer.harness import DATA_DIR_ENV, check_code, run_experiment
from services.engineer.profiles import PROFILES
from services.engineer.reference import render_markdown, run_baselines

TRAIN_FIELDS = ("ok", "val_loss", "benchmarks", "benchmark_mean", "params", "tokens_per_s", "train_seconds")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _progress(event: dict) -> None:
    _say(f"step {event['step']:>5}/{event['steps']}  loss {event['train_loss']:.4f}  "
         f"{event['tokens_per_s']:,.0f} tok/s")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError as exc:
        _say(f"error: cannot read {path}: {exc.strerror}")
        return None


def _describe_failure(failure: dict) -> None:
    _say(f"FAILED ({failure['kind']}): {failure['message']}")
    if failure.get("traceback"):
        _say(failure["traceback"])


def cmd_check(args: argparse.Namespace) -> int:
    code = _read(args.file)
    if code is None:
        return 2
    report = check_code(code, profile=args.profile)
    if args.json:
        print(json.dumps({k: report[k] for k in ("ok", "checks", "errors")}))
    else:
        for name, check in report["checks"].items():
            _say(f"{'ok  ' if check['ok'] else 'FAIL'} {name}")
        for error in report["errors"]:
            _describe_failure(error)
    return 0 if report["ok"] else 1


def cmd_train(args: argparse.Namespace) -> int:
    code = _read(args.file)
    if code is None:
        return 2
    result = run_experiment(code, args.profile, args.seed, corpus=args.corpus, on_progress=_progress,
                            timeout_s=args.timeout, data_dir=args.data_dir)
    if result["ok"]:
        summary = {k: result[k] for k in TRAIN_FIELDS}
        summary["checkpoint"] = result["checkpoint"]
    else:
        summary = {"ok": False, "failure": result["failure"], "checks": result["checks"]}
        _describe_failure(result["failure"])
    if args.json:
        print(json.dumps(summary))
    elif result["ok"]:
        _say(f"val_loss {result['val_loss']:.4f}  benchmark_mean {result['benchmark_mean']:.3f}  "
             f"params {result['params']:,}  {result['tokens_per_s']:,.0f} tok/s  {result['train_seconds']:.1f} s")
    return 0 if result["ok"] else 1


def cmd_baselines(args: argparse.Namespace) -> int:
    def announce(run: dict) -> None:
        figures = f"val_loss {run['val_loss']:.4f}" if run["ok"] else f"FAILED ({run['failure']['kind']})"
        _say(f"{run['name']:<18} seed {run['seed']}  {figures}{'  (cached)' if run['cached'] else ''}")

    names = tuple(args.only) if args.only else BASELINES
    table = run_baselines(args.profile, args.seeds, args.data_dir, names=names, corpus=args.corpus,
                          on_run=announce, on_progress=_progress if args.verbose else None)
    if args.markdown:
        command = f"asi-arch baselines --profile {args.profile} --seeds {args.seeds}"
        args.markdown.write_text(render_markdown(table, command))
        _say(f"wrote {args.markdown}")
    if args.json:
        print(json.dumps(table))
    return 0 if table["ok"] else 1


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    data_dir_default = Path(os.environ.get(DATA_DIR_ENV, ".asi"))

    check = subparsers.add_parser("check", help="pre-flight probes on one mixer file, sandboxed")
    check.add_argument("file", type=Path)
    check.add_argument("--profile", choices=sorted(PROFILES), help="judge the parameter budget at this width")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_check)

    train = subparsers.add_parser("train", help="probes, training and evaluation of one mixer file, sandboxed")
    train.add_argument("file", type=Path)
    train.add_argument("--profile", choices=sorted(PROFILES), default="tiny")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--corpus", help="a text file or folder (default: the Python standard library)")
    train.add_argument("--timeout", type=float, help="wall-clock seconds (default: the profile's)")
    train.add_argument("--data-dir", type=Path, default=data_dir_default)
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=cmd_train)

    baselines = subparsers.add_parser("baselines", help="train the baselines (cached by code, profile and seed)")
    baselines.add_argument("--profile", choices=sorted(PROFILES), default="tiny")
    baselines.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1")
    baselines.add_argument("--only", nargs="+", choices=BASELINES, help="a subset of the baselines")
    baselines.add_argument("--corpus", help="a text file or folder (results are then not cached)")
    baselines.add_argument("--data-dir", type=Path, default=data_dir_default)
    baselines.add_argument("--verbose", action="store_true", help="show training progress")
    baselines.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    baselines.add_argument("--json", action="store_true")
    baselines.set_defaults(func=cmd_baselines)
