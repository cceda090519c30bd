"""`asi-arch`: the one entry point. Commands that report take --json and then print one JSON
object on stdout; progress and messages go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from services.cognition.commands import add_parsers as add_kb_parsers
from services.cognition.ingest import IngestReport
from services.engineer.commands import add_parsers as add_engineer_parsers
from services.pb import events_pb2
from services.researcher.selection import DEFAULT_STRATEGY, STRATEGIES
from services.runtime import envelope
from services.runtime.eventstore import EventStore
from services.runtime.launcher import Launcher, UsageError, load, run_options, start_run
from services.runtime.log import configure as configure_logs
from services.runtime.logfile import LogNotFound, fold, open_export, read_data_dir, read_file, with_log
from services.runtime.natsauth import server_config
from services.runtime.projection import ArchitectureView, Projection

SERVICES = {
    "cognition": "services.cognition.service:CognitionService",
    "researcher": "services.researcher.service:ResearcherService",
    "engineer": "services.engineer.worker:EngineerWorker",
    "judge": "services.judge.service:JudgeService",
    "analyst": "services.analyst.service:AnalystService",
}
DEFAULT_DATA_DIR = Path(".asi")


def nats_login() -> dict[str, str]:
    """Credentials for a NATS given by --nats: ASI_NATS_USER / ASI_NATS_PASSWORD (the chart's run
    Job has the operator's from its Secret), or none (then the URL's user, if it names one)."""
    return {"user": os.environ.get("ASI_NATS_USER", ""), "password": os.environ.get("ASI_NATS_PASSWORD", "")}


def cmd_nats_authorization(args: argparse.Namespace) -> int:
    print(server_config(), end="")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return Launcher(run_options(args)).run()


def cmd_start(args: argparse.Namespace) -> int:
    """Start a run on existing servers (a cluster), without launching any service."""
    async def start() -> dict[str, str]:
        store = await EventStore.open(args.nats, "cli", **nats_login())
        try:
            projection, _ = await load(store)
            run = projection.latest_run()
            if run is not None and not run.finished and not args.new_run:
                print(f"run {run.run_id} is still in progress; --new-run starts another", file=sys.stderr)
                return {"run_id": run.run_id, "started": "false"}
            run = await start_run(store, run_options(args))
            return {"run_id": run.run_id, "started": "true"}
        finally:
            await store.close()

    result = asyncio.run(start())
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from services.runtime.app import main

    module_name, _, class_name = SERVICES[args.service].partition(":")
    main(getattr(importlib.import_module(module_name), class_name))
    return 0


def _events(args: argparse.Namespace) -> list[events_pb2.Envelope]:
    if getattr(args, "file", None):
        return read_file(args.file)
    if getattr(args, "nats", None):
        return read_nats(args.nats)
    return read_data_dir(args.data_dir)


def read_nats(url: str) -> list[events_pb2.Envelope]:
    """The valid events of the log on a running NATS (a cluster's, through a port-forward), in chain order."""
    async def read() -> list[events_pb2.Envelope]:
        store = await EventStore.open(url, "cli", **nats_login())
        try:
            return [r.env for r in await store.read_all() if r.env is not None]
        finally:
            await store.close()

    return asyncio.run(read())


def cmd_export(args: argparse.Namespace) -> int:
    events = _events(args)
    with open_export(args.output, "w") as out:
        out.writelines(envelope.export_lines(events))
    print(f"exported {len(events)} events to {args.output}", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if not args.file.exists():
        print(f"error: {args.file} does not exist", file=sys.stderr)
        return 2
    with open_export(args.file) as lines:
        report = envelope.verify_chain(line for line in lines if line.strip())
    if args.json:
        print(json.dumps(asdict(report), sort_keys=True))
    if report.ok:
        print(f"chain holds: {report.events} events, head {report.head}", file=sys.stderr)
        return 0
    print(f"chain broken at sequence {report.first_bad_sequence}: {report.reason}", file=sys.stderr)
    return 1


def cmd_replay(args: argparse.Namespace) -> int:
    summary = fold(read_file(args.file)).summary()
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(f"{summary['events']} events, {summary['experiments']} experiments, digest {summary['digest']}")
        for row in summary["leaderboard"]:
            print(f"  {row['arch_id']}  {row['name']:<40} fitness {row['fitness']:.4f}")
    return 0


def describe(arch: ArchitectureView, projection: Projection) -> str:
    """The decision trail of one architecture, for a person."""
    lines = [f"{arch.arch_id}  {arch.name}  (run {arch.run_id}, status {arch.status})"]
    if arch.is_baseline:
        seed = projection.baseline(arch.run_id)
        lines.append("  role:       " + ("a baseline of the run and the seed of the search" if arch is seed
                                         else "a baseline of the run and a parent"))
    for parent_id in arch.parents:
        parent = projection.archs.get(parent_id)
        lines.append(f"  parent:     {parent_id} {parent.name if parent else '(unknown)'}")
    if arch.parent_selection:
        lines.append(f"  chosen as:  {arch.parent_selection}")
    lines.append(f"  origin:     {arch.origin} (mind {arch.mind})")
    for c in arch.citations:
        lines.append(f"  cites:      {c['entry_id']} ({c['kind']}, score {c['score']:.3f})")
    lines.append(f"  change:     {arch.mutation}")
    lines.append(f"  motivation: {arch.motivation}")
    lines.append("  components: " + ", ".join(f"{k}={v}" for k, v in sorted(arch.components.items())))
    lines.append(f"  code:       sha256 {arch.code_hash}, fingerprint {arch.fingerprint}")
    if arch.result:
        r = arch.result
        bench = ", ".join(f"{k} {v:.3f}" for k, v in r["benchmarks"].items())
        lines.append(f"  trained:    val_loss {r['val_loss']:.4f}, benchmarks {bench} (mean {r['benchmark_mean']:.3f})")
        lines.append(f"              {r['params']} params, {r['tokens_per_s']:,.0f} tok/s, {r['train_seconds']:.1f}s")
    if arch.failure:
        lines.append(f"  failure:    {arch.failure['kind']}: {arch.failure['message']}")
    if arch.fitness is not None:
        terms = ", ".join(f"{k} {v:.3f}" for k, v in arch.terms.items())
        lines.append(f"  judged:     fitness {arch.fitness:.4f} ({terms}) by {arch.judge}")
        lines.append(f"  rationale:  {arch.rationale}")
    if arch.leak:
        lines.append(f"  leak rule:  {arch.leak['verdict']}: {arch.leak['reason']}")
    if arch.promotion:
        lines.append(f"  promotion:  {arch.promotion['status']} {arch.promotion.get('decision', '')}".rstrip())
    for seed_number, replicate in sorted(arch.replicates.items()):
        figures = replicate.get("result") or replicate.get("failure", {})
        shown = (f"val_loss {figures['val_loss']:.4f}, benchmark mean {figures['benchmark_mean']:.3f}"
                 if "val_loss" in figures else figures.get("kind", "in progress"))
        lines.append(f"  re-run:     seed {seed_number} ({replicate['job_id']}): {replicate['status']}, {shown}")
    if arch.analysis:
        lines.append(f"  analysis:   [{arch.outcome}] {arch.analysis}")
    children = projection.descendants(arch.arch_id)
    if children:
        lines.append(f"  descendants: {', '.join(children)}")
    lines.append("  trail:")
    lines.extend(f"    #{t.sequence:<5} {t.type:<22} {t.producer:<11} {t.detail}" for t in arch.trail)
    return "\n".join(lines)


def cmd_audit(args: argparse.Namespace) -> int:
    projection = fold(_events(args))
    arch = projection.archs.get(args.arch_id)
    if arch is None:
        known = ", ".join(list(projection.archs)[:10])
        print(f"error: no architecture {args.arch_id} in the log (known: {known or 'none'})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(arch), sort_keys=True, default=str))
    else:
        print(describe(arch, projection))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from services.analyst import report as html_report
    from services.analyst.analytics import run_analytics

    projection = fold(_events(args))
    run = projection.runs.get(args.run) if args.run else projection.latest_run()
    if run is None:
        print(f"error: no run {args.run or ''} in the log", file=sys.stderr)
        return 1
    report = run_analytics(projection, run.run_id)
    if args.output:
        path = html_report.write(report, args.output)
        print(f"report written to {path}", file=sys.stderr)
    if args.markdown:
        from services.analyst.summary import markdown

        args.markdown.write_text(markdown(report))
        print(f"figures written to {args.markdown}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    state = f"finished: {run.reason}" if run.finished else "in progress"
    rate = report["sota_rate"]
    print(f"run {run.run_id} ({run.profile}, budget {run.experiments}, {state})")
    print(f"  {report['experiments']} experiments, {report['discoveries']} beat the best baseline's fitness "
          f"({report['baseline_fitness']:.4f}); {rate['sota']} SOTA of {rate['trained']} trained")
    for origin, share in report["origins_of_discoveries"].items():
        print(f"  discoveries from {origin:<10} {share['count']:>3} ({share['share']:.0%})")
    print("  discovery curve: " + " ".join(str(p["discoveries"]) for p in report["discovery_curve"]))
    for item in report["promotions"]:
        print(f"  promotion {item['arch_id']} {item['name']}: {item['status']} {item.get('decision', '')}")
    print("  leaderboard:")
    for row in report["leaderboard"][:10]:
        print(f"    {row['arch_id']}  {row['name']:<40} fitness {row['fitness']:.4f}")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    projection = fold(_events(args))
    if args.arch_id not in projection.archs:
        print(f"error: no architecture {args.arch_id} in the log", file=sys.stderr)
        return 1
    ancestors, descendants = projection.ancestors(args.arch_id), projection.descendants(args.arch_id)
    result = {"arch_id": args.arch_id, "ancestors": ancestors, "descendants": descendants}
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"{args.arch_id}\n  ancestors:   {' <- '.join(ancestors) or 'none'}\n"
              f"  descendants: {', '.join(descendants) or 'none'}")
    return 0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help="a named configuration: discover (the README's discovery run); "
                        "flags given beside it override its values")
    parser.add_argument("--experiments", type=int, help="experiment budget, baseline excluded (default 8)")
    parser.add_argument("--profile", help="training profile: tiny, cpu, explore, gpu-20m, gpu-340m (default cpu)")
    parser.add_argument("--promotion-profile", help="the profile promotions re-train at (default: the run's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engineers", type=int, help="engineer workers (jobs in flight); default: one per core, "
                        "at most 4, the cores shared out as threads (services/engineer/placement.py)")
    parser.add_argument("--corpus", help="text file or folder to train on (default: the Python standard library)")
    parser.add_argument("--new-run", action="store_true", help="start a new run even if the log holds one")
    parser.add_argument("--parent-strategy", choices=STRATEGIES,
                        help=f"how the researcher picks parents (default: {DEFAULT_STRATEGY}; the discover "
                        "preset's: pareto; see services/researcher/selection.py)")
    parser.add_argument("--seed-arch", nargs="+", metavar="FILE",
                        help="Mixer files the run starts from, beside the baseline")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--mind", choices=("evolve", "llm", "mixed"),
                        help="who proposes: the offline evolve mind, an LLM, or an LLM with the evolve mind "
                             "standing in when it fails or its budget is spent (default: mixed with an LLM, "
                             "else evolve)")
    parser.add_argument("--llm-token-budget", type=int, default=0,
                        help="prompt + completion tokens the LLM mind may spend in the run (default 200000)")
    parser.add_argument("--repairs", type=int, default=0,
                        help="repair attempts of one failing proposal (default 2)")
    parser.add_argument("--idea-retries", type=int, default=0,
                        help="duplicates of one idea sent back to the LLM mind (default 2)")
    parser.add_argument("--novelty-motivation-threshold", type=float, default=0.0,
                        help="MiniLM cosine similarity of motivations that counts as a duplicate (default 0.99)")
    parser.add_argument("--novelty-code-threshold", type=float, default=0.0,
                        help="the same for code chunked, without comments and docstrings (default 0.99995)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asi-arch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the discovery loop on this machine (embedded NATS and Qdrant)")
    add_run_arguments(run)
    run.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    run.add_argument("--nats", help="use this NATS server instead of starting one")
    run.add_argument("--qdrant", help="use this Qdrant server instead of local mode")
    run.add_argument("--llm-url", help="OpenAI-compatible base URL (e.g. a vLLM server)")
    run.add_argument("--llm-model", default=os.environ.get("ASI_LLM_MODEL", "default"))
    run.add_argument("--llm", metavar="local[-SIZE]",
                     help="serve an embedded model with llama-server for this run: local (Qwen2.5-Coder-0.5B) "
                          "or local-1.5b; install it first with `make llm`")
    run.add_argument("--job-ack-wait", type=float, default=30.0,
                     help="seconds a training job may go without a heartbeat before redelivery")
    run.set_defaults(func=cmd_run)

    start = sub.add_parser("start", help="start a run on running services (a cluster) and return")
    add_run_arguments(start)
    start.add_argument("--nats", required=True, help="the NATS server the services use")
    start.set_defaults(func=cmd_start)

    serve = sub.add_parser("serve", help="run one service (the container entry point); settings from ASI_* env")
    serve.add_argument("service", choices=sorted(SERVICES))
    serve.set_defaults(func=cmd_serve)

    events = sub.add_parser("events", help="export or verify the event log").add_subparsers(dest="action",
                                                                                          required=True)
    export = events.add_parser("export", help="write the log as one canonical JSON event per line")
    export.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    export.add_argument("--nats", metavar="URL", help="read the log from this running NATS instead of the data dir")
    export.add_argument("-o", "--output", type=Path, required=True)
    export.set_defaults(func=cmd_export)
    verify = events.add_parser("verify", help="check the hash chain of an exported log")
    verify.add_argument("file", type=Path)
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=cmd_verify)

    replay = sub.add_parser("replay", help="rebuild the projections from an exported log alone")
    replay.add_argument("file", type=Path)
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(func=cmd_replay)

    for name, func, text in (("audit", cmd_audit, "the decision trail of one architecture"),
                             ("lineage", cmd_lineage, "ancestors and descendants of one architecture")):
        command = sub.add_parser(name, help=text)
        command.add_argument("arch_id")
        command.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
        command.add_argument("--file", type=Path, help="read an exported log instead of the data dir")
        command.add_argument("--json", action="store_true")
        command.set_defaults(func=func)

    report = sub.add_parser("report", help="run analytics and the HTML discovery report")
    report.add_argument("--run", help="run id (default: the latest)")
    report.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    source = report.add_mutually_exclusive_group()
    source.add_argument("--file", type=Path, help="read an exported log instead of the data dir")
    source.add_argument("--nats", metavar="URL", help="read the log from this running NATS instead of the data dir")
    report.add_argument("-o", "--output", type=Path, help="write OUTPUT/index.html, one self-contained page")
    report.add_argument("--markdown", type=Path, metavar="FILE",
                        help="also write the run's figures as Markdown (the README's \"Discoveries\" section)")
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=cmd_report)

    authorization = sub.add_parser(
        "nats-authorization", help="print the authorization block for a NATS server of your own: a user per "
                                   "service role, its password read from $ASI_NATS_PASSWORD_<ROLE>")
    authorization.set_defaults(func=cmd_nats_authorization)

    add_engineer_parsers(sub)
    add_kb_parsers(sub, on_ingested=record_ingestion)
    return parser


def record_ingestion(report: IngestReport, data_dir: Path) -> None:
    """Append a KnowledgeIngested event, with any LLM exchange, to the data dir's log; content
    that was already in the store adds nothing, to the store or to the log."""
    if not report.added:
        return
    model = os.environ.get("ASI_LLM_MODEL", "default")
    event = events_pb2.KnowledgeIngested(
        entry_ids=[e.id for e in report.entries], source=report.source,
        extractor=f"llm:{model}" if report.exchanges else "structured",
        prompts=[x.prompt for x in report.exchanges], responses=[x.response for x in report.exchanges])

    async def append(store: EventStore) -> None:
        await store.append(event, run_id="", aggregate_id="knowledge",
                           event_id=envelope.event_id_for("ingested", *sorted(event.entry_ids)))

    with_log(data_dir, append, create=True)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    if args.command != "serve":  # services configure their own logs; commands keep stdout for results
        configure_logs("cli", level=logging.WARNING)
    try:
        return args.func(args)
    except (LogNotFound, envelope.MalformedEvent, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
