"""`asi-arch run`: the whole system on one machine.

Starts nats-server (unless --nats is given) with its store in the data dir, starts the
run (or resumes the one the log holds), launches the five services as separate
processes that talk only through NATS and gRPC, shows progress from the event stream,
and stops everything once the run has finished.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from services.engineer.placement import ENGINEER_THREADS_ENV, default_engineers, threads_per_engineer, usable_cores
from services.engineer.profiles import get_profile
from services.pb import events_pb2
from services.researcher.selection import DEFAULT_STRATEGY, STRATEGIES
from services.runtime.eventstore import EventStore, Record
from services.runtime.llmserver import LlamaServer, LLMServerError
from services.runtime.natsauth import OPERATOR, NatsAuth
from services.runtime.natsserver import EmbeddedNats, free_port, running_url
from services.runtime.private import private_folder
from services.runtime.processes import die_with_parent
from services.runtime.projection import Projection, RunView

SERVICE_NAMES = ("cognition", "analyst", "researcher", "judge")
MAX_RESTARTS = 5  # per service, before the launcher gives up on the run


@dataclass(frozen=True)
class RunOptions:
    data_dir: Path
    experiments: int
    profile: str
    seed: int
    engineers: int
    corpus: str
    nats_url: str
    qdrant_url: str
    llm_url: str
    llm_model: str
    job_ack_wait_s: float
    as_json: bool
    new_run: bool = False
    parent_strategy: str = DEFAULT_STRATEGY
    seed_archs: tuple[Path, ...] = ()
    mind: str = "evolve"  # evolve | llm | mixed
    llm_local: str = ""  # a local model size ("0.5b", "1.5b") the launcher serves with llama-server
    llm_token_budget: int = 0  # 0 here and below: the researcher's defaults
    repairs: int = 0
    idea_retries: int = 0
    novelty_motivation_threshold: float = 0.0
    novelty_code_threshold: float = 0.0
    promotion_profile: str = ""  # "": promotions re-train at the run's profile
    preset: str = ""

    @property
    def mind_label(self) -> str:
        """RunStarted.mind: "evolve", or the mode and the model, e.g. "mixed:qwen2.5-coder-0.5b-instruct-q4_k_m"."""
        return self.mind if self.mind == "evolve" else f"{self.mind}:{self.llm_model}"


# Named configurations of `run`; a flag given on the command line overrides its preset's value.
PRESETS: dict[str, dict[str, Any]] = {
    # The discovery run of a 2-core machine: about 100 experiments at the exploration scale, each
    # promoted candidate re-trained at `cpu` on 3 seeds next to both baselines (README, "Discoveries").
    # Parents by Pareto layer: by fitness, the second run drew Gated DeltaNet, the loss leader, as a
    # parent 5 times in 100 (services/researcher/selection.py).
    # Exploration at `explore-long`: at `explore`, gated designs that recall by step 250 do not yet.
    "discover": {"profile": "explore-long", "promotion_profile": "cpu", "experiments": 100,
                 "parent_strategy": "pareto"},
}
RUN_DEFAULTS: dict[str, Any] = {"profile": "cpu", "promotion_profile": "", "experiments": 8,
                                "parent_strategy": DEFAULT_STRATEGY}


class UsageError(ValueError):
    """A command-line setting that cannot work; the message says which and why."""


def run_options(args: Any) -> RunOptions:
    """RunOptions from parsed `run` or `start` arguments, checked before anything starts."""
    preset_name = getattr(args, "preset", None) or ""
    if preset_name and preset_name not in PRESETS:
        raise UsageError(f"--preset {preset_name}: unknown; known: {', '.join(PRESETS)}")
    given = {name: getattr(args, name, None) for name in RUN_DEFAULTS}
    chosen = {name: value if value is not None else PRESETS.get(preset_name, {}).get(name, RUN_DEFAULTS[name])
              for name, value in given.items()}
    engineers = default_engineers(usable_cores()) if args.engineers is None else args.engineers
    if chosen["experiments"] < 1 or engineers < 1:
        raise UsageError("--experiments and --engineers must be at least 1")
    for flag in ("profile", "promotion_profile"):
        try:
            if chosen[flag]:
                get_profile(chosen[flag])
        except ValueError as exc:
            raise UsageError(f"--{flag.replace('_', '-')}: {exc}") from exc
    if args.corpus and not Path(args.corpus).exists():
        raise UsageError(f"--corpus {args.corpus} does not exist")
    strategy = chosen["parent_strategy"]
    if strategy not in STRATEGIES:
        raise UsageError(f"--parent-strategy {strategy}: unknown; known: {', '.join(STRATEGIES)}")
    seed_archs = tuple(Path(p) for p in getattr(args, "seed_arch", None) or ())
    for path in seed_archs:
        if not path.is_file():
            raise UsageError(f"--seed-arch {path} is not a file")
    llm_local = llm_local_size(getattr(args, "llm", None))
    llm_url = getattr(args, "llm_url", None) or ""
    if llm_local and llm_url:
        raise UsageError("--llm local and --llm-url name two LLMs; choose one")
    mind = getattr(args, "mind", None) or ("mixed" if llm_local or llm_url else "evolve")
    # `start` joins a cluster whose services have their own ASI_LLM_URL; `run` must be given one.
    if mind != "evolve" and hasattr(args, "llm_url") and not (llm_local or llm_url):
        raise UsageError(f"--mind {mind} needs an LLM: --llm local (the embedded model) or --llm-url URL")
    if getattr(args, "repairs", 0) < 0 or getattr(args, "llm_token_budget", 0) < 0:
        raise UsageError("--repairs and --llm-token-budget cannot be negative")
    llm_model = getattr(args, "llm_model", "default")
    if llm_local:
        from services.runtime.llmserver import MODELS

        llm_model = MODELS[llm_local].name
    return RunOptions(
        data_dir=getattr(args, "data_dir", Path(".asi")), experiments=chosen["experiments"], profile=chosen["profile"],
        promotion_profile=chosen["promotion_profile"], preset=preset_name,
        seed=args.seed, engineers=engineers, corpus=str(Path(args.corpus).resolve()) if args.corpus else "",
        nats_url=args.nats or "", qdrant_url=getattr(args, "qdrant", None) or "",
        llm_url=llm_url, llm_model=llm_model,
        job_ack_wait_s=getattr(args, "job_ack_wait", 30.0), as_json=args.json, new_run=args.new_run,
        parent_strategy=strategy, seed_archs=seed_archs, mind=mind, llm_local=llm_local,
        llm_token_budget=getattr(args, "llm_token_budget", 0) or 0,
        repairs=getattr(args, "repairs", 0) or 0, idea_retries=getattr(args, "idea_retries", 0) or 0,
        novelty_motivation_threshold=getattr(args, "novelty_motivation_threshold", 0.0) or 0.0,
        novelty_code_threshold=getattr(args, "novelty_code_threshold", 0.0) or 0.0)


def llm_local_size(value: str | None) -> str:
    """``--llm local`` (the default model) or ``--llm local-1.5b`` as a model size; "" for none."""
    if not value:
        return ""
    from services.runtime.llmserver import DEFAULT_MODEL, MODELS

    size = DEFAULT_MODEL if value == "local" else value.removeprefix("local-")
    if size not in MODELS:
        choices = ", ".join(["local", *(f"local-{m}" for m in MODELS)])
        raise UsageError(f"--llm {value} is not a local model; choose one of {choices}")
    return size


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ServiceProcess:
    """One service as a child process, its output appended to logs/<name>.log."""

    def __init__(self, name: str, role: str, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.role, self.env = name, role, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._log: IO[bytes] | None = None
        self._read_to = 0  # how far `failed_reactions` has read the log
        self._reported: set[str] = set()

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        self._read_to = self.log_path.stat().st_size
        self.process = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", self.role],
                                        env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=die_with_parent)

    def exited(self) -> int | None:
        return self.process.poll() if self.process else None

    def failed_reactions(self) -> list[str]:
        """The last line of each new kind of exception the service logged as ``react.failed`` since the
        last call: a service retries a failed reaction for ever, so without this a run that cannot
        advance would look idle to the person watching."""
        with open(self.log_path, "rb") as log:
            log.seek(self._read_to)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._read_to += len(complete)
        new = []
        for line in complete.decode(errors="replace").splitlines():
            if '"react.failed"' not in line:
                continue
            try:
                exception = str(json.loads(line).get("exception", ""))
            except json.JSONDecodeError:
                continue
            last = (exception.strip().splitlines() or ["an exception"])[-1][:300]
            if last not in self._reported:
                self._reported.add(last)
                new.append(last)
        return new

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log:
            self._log.close()


def interrupted_exit() -> int:
    say("interrupted: the run is kept in the log; `asi-arch run` on the same data dir resumes it")
    return 130  # the shell's code for a process ended by SIGINT


async def load(store: EventStore) -> tuple[Projection, int]:
    """The projection of the whole log, and the stream sequence to follow from."""
    projection = Projection()
    records = await store.read_all()
    for record in records:
        if record.env is not None:
            projection.apply(record.env, record.event)  # type: ignore[arg-type]
    return projection, (records[-1].stream_seq + 1 if records else 1)


async def start_run(store: EventStore, o: RunOptions) -> RunView:
    """Append RunStarted: from then on the services drive the run."""
    run_id = "run-" + uuid.uuid4().hex[:12]
    seeds = [events_pb2.SeedArchitecture(name=path.stem, code=path.read_text()) for path in o.seed_archs]
    env = await store.append(
        events_pb2.RunStarted(profile=o.profile, experiments=o.experiments, seed=o.seed, mind=o.mind_label,
                              corpus=o.corpus, engineers=o.engineers, parent_strategy=o.parent_strategy,
                              seed_architectures=seeds, llm_token_budget=o.llm_token_budget,
                              repairs=o.repairs, idea_retries=o.idea_retries,
                              novelty_motivation_threshold=o.novelty_motivation_threshold,
                              novelty_code_threshold=o.novelty_code_threshold,
                              promotion_profile=o.promotion_profile, preset=o.preset),
        run_id=run_id, aggregate_id=run_id, expected_version=0)
    promoted_at = f" (promotions at {o.promotion_profile})" if o.promotion_profile else ""
    preset = f", preset {o.preset}" if o.preset else ""
    say(f"run {run_id} started{preset}: {o.experiments} experiments, profile {o.profile}{promoted_at}, "
        f"{o.engineers} engineer worker(s), "
        f"mind {o.mind_label}")
    return RunView(run_id, o.profile, o.experiments, o.seed, o.mind_label, o.corpus, o.engineers, env.event_id,
                   parent_strategy=o.parent_strategy,
                   seed_architectures=[{"name": a.name, "code": a.code} for a in seeds],
                   llm_token_budget=o.llm_token_budget, repairs=o.repairs, idea_retries=o.idea_retries,
                   novelty_motivation_threshold=o.novelty_motivation_threshold,
                   novelty_code_threshold=o.novelty_code_threshold, promotion_profile=o.promotion_profile,
                   preset=o.preset)


class Launcher:
    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.started_at = time.monotonic()
        self.auth: NatsAuth | None = None  # the embedded server's credentials; None on a given --nats

    def run(self) -> int:
        if not self.data_dir.exists():  # a folder of the user's keeps its mode; what we make in it is private
            private_folder(self.data_dir)
        private_folder(self.log_dir)
        nats: EmbeddedNats | None = None
        url = self.options.nats_url
        if not url:
            owner = running_url(self.data_dir)
            if owner:
                say(f"error: another process serves {self.data_dir} (nats at {owner}); "
                    "wait for it to finish or use another --data-dir")
                return 2
            self.auth = NatsAuth.of_data_dir(self.data_dir)
            nats = EmbeddedNats(self.data_dir / "nats", url_file=self.data_dir / "nats.url",
                                config=self.auth.config_path)
            url = nats.start()
            say(f"nats-server started at {url} (store {self.data_dir / 'nats'}; a password per service, "
                f"in {self.auth.folder})")
        llm_server = None
        try:
            if self.options.llm_local:
                llm_server = self._start_llm()
            return asyncio.run(self._main(url))
        except KeyboardInterrupt:
            return interrupted_exit()
        except LLMServerError as exc:
            say(f"error: {exc}")
            return 2
        finally:
            if llm_server is not None:
                llm_server.stop()
            if nats is not None:
                nats.stop()

    def _start_llm(self) -> LlamaServer:
        """The embedded model, started like nats-server and pointed at by every service."""
        server = LlamaServer(self.options.llm_local, log_path=self.log_dir / "llama-server.log")
        url = server.start()
        self.options = replace(self.options, llm_url=url, llm_model=server.model_name)
        say(f"llama-server started at {url} ({server.model_name}, {server.threads} thread(s))")
        return server

    def _credentials(self, role: str) -> dict[str, str]:
        """The variables that log a service in: as its role on the embedded server; on a given
        --nats, as whoever ASI_NATS_USER / ASI_NATS_PASSWORD name (or the URL's user)."""
        if self.auth is None:
            return {k: os.environ[k] for k in ("ASI_NATS_USER", "ASI_NATS_PASSWORD") if k in os.environ}
        user, password = self.auth.credentials(role)
        return {"ASI_NATS_USER": user, "ASI_NATS_PASSWORD": password}

    def _env(self, url: str, run_id: str, ports: dict[str, int]) -> dict[str, str]:
        # The judge's promotion settings pass through (ASI_PROMOTE_*, see services/judge/README.md), and
        # the LLM's (ASI_LLM_API_KEY, ASI_LLM_TIMEOUT_S, ASI_LLM_ANSWER; its URL and model are set below).
        # NATS credentials are per role.
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("ASI_") or k.startswith(("ASI_PROMOTE_", "ASI_LLM_"))}
        return {**base, "ASI_NATS_URL": url, "ASI_DATA_DIR": str(self.data_dir), "ASI_RUN_ID": run_id,
                "ASI_COGNITION_ADDR": f"127.0.0.1:{ports['cognition']}",
                "ASI_LINEAGE_ADDR": f"127.0.0.1:{ports['analyst']}", "ASI_QDRANT_URL": self.options.qdrant_url,
                "ASI_LLM_URL": self.options.llm_url, "ASI_LLM_MODEL": self.options.llm_model,
                "ASI_JOB_ACK_WAIT_S": str(self.options.job_ack_wait_s), "HF_HUB_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1"}

    def _processes(self, url: str, run_id: str) -> list[ServiceProcess]:
        # Only the services others dial get a port chosen here; the rest bind whatever is free (0), so
        # a port taken between the choice and the bind (seen in CI: the judge's, six restarts in a row)
        # cannot stop them. Chosen ports lie outside the ephemeral range (`free_port`), where no
        # outgoing connection can take them meanwhile.
        ports = {name: free_port() for name in ("cognition", "analyst")}
        env = self._env(url, run_id, ports)
        processes = []
        for name in SERVICE_NAMES:
            processes.append(ServiceProcess(name, name, {**env, **self._credentials(name),
                                                         "ASI_GRPC_PORT": str(ports.get(name, 0)),
                                                         "ASI_METRICS_PORT": str(free_port())}, self.log_dir))
        threads = str(threads_per_engineer(usable_cores(), self.options.engineers))
        for i in range(1, self.options.engineers + 1):
            processes.append(ServiceProcess(f"engineer-{i}", "engineer",
                                            {**env, **self._credentials("engineer"),
                                             "ASI_WORKER_ID": f"engineer-{i}", "ASI_GRPC_PORT": "0",
                                             "ASI_METRICS_PORT": str(free_port()), ENGINEER_THREADS_ENV: threads},
                                            self.log_dir))
        return processes

    async def _main(self, url: str) -> int:
        login = self._credentials(OPERATOR)
        store = await EventStore.open(url, "launcher", user=login.get("ASI_NATS_USER", ""),
                                      password=login.get("ASI_NATS_PASSWORD", ""))
        try:
            projection, next_seq = await load(store)
            run = projection.latest_run()
            if run is not None and run.finished and not self.options.new_run:
                say(f"run {run.run_id} already finished ({run.reason}); nothing to resume "
                    "(--new-run starts another in the same data dir)")
                return self._report(projection, run)
            if run is None or run.finished:
                run = await start_run(store, self.options)
                say(f"data in {self.data_dir}")
            else:
                done = sum(a.terminal for a in projection.experiments(run.run_id))
                say(f"resuming run {run.run_id}: {done}/{run.experiments} experiments finished")
            return await self._supervise(store, url, run.run_id, start_seq=next_seq, projection=projection)
        finally:
            await store.close()

    async def _supervise(self, store: EventStore, url: str, run_id: str, *, start_seq: int,
                         projection: Projection) -> int:
        processes = self._processes(url, run_id)
        for process in processes:
            process.start()
        say(f"services started: {', '.join(p.name for p in processes)} (logs in {self.log_dir})")
        stop = asyncio.Event()
        failure: list[str] = []

        async def handle(record: Record) -> None:
            assert record.env is not None
            projection.apply(record.env, record.event)  # type: ignore[arg-type]
            self._show(record, projection)
            run = projection.runs.get(run_id)
            if run is not None and run.finished:
                stop.set()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(1.0)
                for process in processes:
                    for failed in process.failed_reactions():
                        say(f"{process.name}: a reaction failed and is retried ({failed}); see {process.log_path}")
                    code = process.exited()
                    if code is None:
                        continue
                    if process.restarts >= MAX_RESTARTS:
                        failure.append(f"{process.name} exited {MAX_RESTARTS + 1} times; see {process.log_path}")
                        stop.set()
                        return
                    process.restarts += 1
                    say(f"{process.name} exited with code {code}; restarting ({process.restarts}/{MAX_RESTARTS}), "
                        f"see {process.log_path}")
                    process.start()

        # Ctrl-C ends the follow loop like a finished run does: cancelling the task instead could be
        # swallowed by a library awaiting at that instant, and the run would go on to the end.
        interrupted = asyncio.Event()
        loop = asyncio.get_running_loop()

        def interrupt() -> None:
            interrupted.set()
            stop.set()

        loop.add_signal_handler(signal.SIGINT, interrupt)
        watcher = asyncio.create_task(watch())
        try:
            await store.follow(handle, start_seq=start_seq, stop=stop)
        finally:
            loop.remove_signal_handler(signal.SIGINT)  # from here a Ctrl-C is a KeyboardInterrupt again
            watcher.cancel()
            for process in processes:
                process.stop()
        if interrupted.is_set():
            return interrupted_exit()
        if failure:
            say("error: " + failure[0])
            return 1
        return self._report(projection, projection.runs[run_id])

    def _show(self, record: Record, projection: Projection) -> None:
        env, event = record.env, record.event
        assert env is not None and event is not None
        clock = f"[{time.monotonic() - self.started_at:7.1f}s]"
        arch_id = getattr(event, "arch_id", "")
        arch = projection.archs.get(arch_id)
        name = f"{arch_id} {arch.name}" if arch else arch_id
        cites = "; cites " + ", ".join(c.entry_id for c in event.citations) if getattr(event, "citations", None) else ""
        line = {
            "ArchitectureProposed": lambda e: f"proposed {name} (origin {e.origin}{cites})" + (
                f" by {e.mind}: {e.llm_prompt_tokens + e.llm_completion_tokens:,} tokens, {e.llm_seconds:.0f}s"
                if e.mind.startswith("llm:") else ""),
            "LLMExchangeFailed": lambda e: f"LLM {e.purpose} for {arch_id} gave no code ({e.kind}, "
                                           f"{e.seconds:.0f}s): {e.message[:160]}; next: {e.fallback}",
            "ProposalRejected": lambda e: f"{name} rejected by {e.gate} gate: {e.reason}",
            "TrainingStarted": lambda e: f"{name} training on {e.worker}",
            "TrainingProgress": lambda e: f"{name} step {e.step}/{e.steps} loss {e.train_loss:.3f} "
                                          f"{e.tokens_per_s:,.0f} tok/s",
            "TrainingFinished": lambda e: f"{name} trained: val_loss {e.val_loss:.4f}, benchmarks "
                                          f"{e.benchmark_mean:.3f}, {e.train_seconds:.1f}s",
            "TrainingFailed": lambda e: f"{name} FAILED ({e.kind}): {e.message[:160]}",
            "ArchitectureJudged": lambda e: f"{name} fitness {e.fitness:.4f}",
            "ArchitectureDiscarded": lambda e: f"{name} discarded: {e.reason}",
            "ArchitectureAnalyzed": lambda e: f"{name} analyzed: {e.outcome}",
            "LeakChecked": lambda e: f"{name} leak rule: {e.verdict} ({e.reason[:160]})",
            # The first clause of the reason tells a first request from one extended past the screen.
            "PromotionRequested": lambda e: f"{name} promotion requested ({e.reason.partition(':')[0][:100]}): "
                                            f"re-runs on seeds {list(e.seeds)}",
            "ArchitecturePromoted": lambda e: f"{name} PROMOTED to SOTA: {e.decision[:160]}",
            "PromotionDenied": lambda e: f"{name} promotion denied: {e.decision[:160]}",
            "RunFinished": lambda e: f"run finished: {e.reason}",
            "EventRejected": lambda e: f"rejected a malformed message on {e.subject}: {e.reason}",
        }.get(env.type)
        if line is not None:
            say(f"{clock} {line(event)}")

    def _report(self, projection: Projection, run: RunView) -> int:
        summary = projection.summary()
        results_dir = self.data_dir / "results"
        results_dir.mkdir(exist_ok=True)
        results_path = results_dir / f"{run.run_id}.json"
        results_path.write_text(json.dumps(summary, indent=2, sort_keys=True))
        board = projection.leaderboard(run.run_id)
        say(f"\nleaderboard of {run.run_id} ({len(projection.experiments(run.run_id))} experiments):")
        say(f"  {'rank':>4}  {'arch':<18} {'name':<40} {'fitness':>8} {'val_loss':>9} {'bench':>6}")
        for rank, arch in enumerate(board, start=1):
            tag = " (baseline)" if arch.is_baseline else ""
            say(f"  {rank:>4}  {arch.arch_id:<18} {(arch.name + tag)[:40]:<40} {arch.fitness:>8.4f} "
                f"{arch.result.get('val_loss', 0):>9.4f} {arch.result.get('benchmark_mean', 0):>6.3f}")
        from services.analyst import report as html_report  # matplotlib: loaded only when a run ends
        from services.analyst.analytics import run_analytics

        report_path = html_report.write(run_analytics(projection, run.run_id), self.data_dir / "report")
        say(f"\nreport:  {report_path}")
        say(f"results: {results_path}\nlogs:    {self.log_dir}\nevent log: {self.data_dir / 'nats'} "
            f"(export with `asi-arch events export --data-dir {self.options.data_dir} -o run.jsonl`, "
            f"audit with `asi-arch audit ARCH_ID --data-dir {self.options.data_dir}`)")
        if self.options.as_json:
            payload: dict[str, Any] = {"run_id": run.run_id, "reason": run.reason, "results": str(results_path),
                                       "report": str(report_path),
                                       "logs": str(self.log_dir), **summary}
            print(json.dumps(payload, sort_keys=True))
        return 0 if run.reason == "experiment budget spent" else 1
