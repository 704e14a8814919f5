"""The benchmark subcommands of the CLI: run, merge, jobs, submit, check, report, leaderboard, list.

Only this module and ``bench.cli.main`` talk to the user (rich progress bars and tables); the
library underneath returns data.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.progress import console as _console
from bench.core.io import shell_join
from bench.eval.knowledge import LEVELS

if TYPE_CHECKING:
    from bench.eval.schema import Result

DEFAULT_PROTOCOL = "cifar10-smoke"


class _Bars:
    """Progress of the runner's stages: rich bars with ETA on a terminal; in a log (CI, nohup),
    plain lines, one per stage start and end and a heartbeat at least once a minute
    (``bench.cli.progress.LineProgress``)."""

    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from bench.cli.progress import LineProgress

        self.console = console
        self.lines = None if console.is_terminal else LineProgress(
            lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))
        self.progress = Progress(TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("batches"), TimeRemainingColumn(), console=console,
                                 disable=self.lines is not None)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        (self.lines or self.progress).__enter__()
        return self

    def __exit__(self, *exc):
        return (self.lines or self.progress).__exit__(*exc)

    def log(self, message: str) -> None:
        """A timestamped line above the bars (or in the log)."""
        self.progress.console.log(message)

    def __call__(self, event) -> None:
        if self.lines is not None:
            self.lines(event)
            return
        if event.stage not in self.tasks:
            self.tasks[event.stage] = self.progress.add_task(event.stage, total=event.total)
        self.progress.update(self.tasks[event.stage], completed=event.done, total=event.total)


def _run_command(protocol: str, spec: str, models: list[str] = ()) -> str:
    return shell_join(["shieldbench", "run", "--protocol", protocol, "--defense", spec, *models])


def tolerance(text: str) -> float | None:
    """``--tolerance``: ``auto`` (``None``: each number's sampling noise) or a finite fraction in [0, 1),
    refused before anything runs."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'auto': {text!r}") from None
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1) (0.02 = 2 points of accuracy), got {text!r}")
    return value


MODEL_HELP = ("a Python file that registers your own model(s) with bench.register_model, to be named as a "
              "protocol's base or a defense's member (repeatable)")


def _model_argv(paths: list[str]) -> list[str]:
    """``["--model", FILE, ...]`` for reproducing commands."""
    return [a for p in paths for a in ("--model", p)]


def _load_models(args: argparse.Namespace) -> tuple[list[str], dict]:
    """Loads the ``--model`` files; returns their argv (for reproducing commands) and provenance."""
    from bench.submissions.submit import load_model_file, submission_sha256

    files = [{"path": str(f), "sha256": submission_sha256(f), "models": load_model_file(f)}
             for f in getattr(args, "model", None) or []]
    return _model_argv([f["path"] for f in files]), ({"model_files": files} if files else {})


def _score(protocol_name, defenses, console, *, data=None, cache=None, command=None, extra=None,
           on_result=None, job=None) -> list:
    """Scores defenses (``Defense`` objects) with progress bars; returns their results.

    Every member model is loaded before anything runs (a missing model fails fast), and
    ``on_result`` is called as soon as each defense's result exists (so ``run`` saves it
    then: a later failure loses nothing). With ``job = (shard, selection)`` each defense
    gives a ``bench.eval.jobs.Partial`` instead of a result.
    """
    from bench.eval.protocol import load_protocol
    from bench.eval.runner import Runner

    protocol = load_protocol(protocol_name) if isinstance(protocol_name, str) else protocol_name  # name, path or Protocol
    out = []
    with _Bars(console) as bars:
        runner = Runner(protocol, data=data, cache=cache, on_event=bars)
        runner.cache.check_writable()  # an unwritable cache: one warning now, not a traceback after the crafting
        levels = set(job[1].knowledge) if job and job[1].knowledge else set(LEVELS)
        needed = {protocol.base, *(m for d in defenses for m in d.members)}
        if "transfer" in levels:
            needed.add(protocol.source)
        for m in sorted(needed):
            runner.model(m)  # every model loaded and verified (sha256) before anything is crafted
        for d in defenses:
            runner.command = command(d) if command else _run_command(protocol.name, d.spec)
            bars.log(f"scoring [bold]{d.spec}[/] under {protocol.name} v{protocol.version}")
            if job:
                result = runner.records(d, *job)
                if extra:
                    result.provenance.update(extra)
                skipped = [(s.knowledge.value, s.reason) for s in result.skipped]
            else:
                result = runner.run(d)
                if extra:  # the files it was scored with, read (and checked) like stored provenance
                    from bench.eval.schema import Provenance, read_json

                    result = dataclasses.replace(result, provenance=read_json(
                        Provenance, {**result.provenance.to_json(), **extra}, f"the result of {d.spec}", "provenance"))
                skipped = [(s.knowledge.value, s.reason) for s in result.skipped or ()]
            for level, reason in skipped:
                bars.log(f"[yellow]skipped {level}[/]: {reason}")
            if on_result:
                on_result(result)
            out.append(result)
    return out


def _rows(results: list[dict], console) -> None:
    """Prints the results' leaderboard rows (the same table as the leaderboard page)."""
    from bench.reports.leaderboard import headline_table

    console.print(headline_table(results), markup=False, soft_wrap=True)  # a table: never wrap its lines


def _registered_names() -> set[str]:
    from bench.core.defense import DEFENSES
    from bench.core.transform import TRANSFORMS

    return set(DEFENSES.names()) | set(TRANSFORMS.names())


def _results_dir(args) -> Path:
    from bench.eval.results import results_root

    return Path(args.results) if args.results else results_root()


def _writable(directory: Path, what: str) -> Path:
    """``directory``, after checking that it can be written: before the scoring work, not after it.

    Raises:
        ValueError: naming the directory and the operating system's reason.
    """
    from bench.core.io import probe_writable

    try:
        probe_writable(directory)
    except OSError as e:
        raise ValueError(f"cannot write {what} to {directory}: {e.strerror or e}") from None
    return directory


def _render(root: Path, console) -> None:
    from bench.reports.leaderboard import write_leaderboards

    for path in write_leaderboards(root, root.parent):
        console.print(f"wrote {path}")


def cmd_run(args: argparse.Namespace) -> int:
    from bench.eval.cache import AdversarialCache
    from bench.core.defense import build_defense
    from bench.eval.protocol import load_protocol
    from bench.eval.results import save_result

    console = _console()
    protocol = load_protocol(args.protocol)
    models, provenance = _load_models(args)
    specs = args.defense or list(protocol.defenses)
    defenses = [build_defense(s) for s in specs]
    if args.shard or args.attack or args.knowledge or args.partials:
        return _run_job(args, protocol, defenses, console, models, provenance)
    root = _writable(_results_dir(args), "results")
    results = _score(protocol, defenses, console, data=args.data,
                     cache=AdversarialCache(enabled=not args.no_cache), extra=provenance,
                     command=lambda d: _run_command(args.protocol, d.spec, models),
                     on_result=lambda r: console.print(f"wrote {save_result(root, r)}"))
    _render(root, console)
    _rows(results, console)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench.core.defense import build_defense
    from bench.eval.export import export_examples, find_plan
    from bench.eval.protocol import load_protocol
    from bench.eval.runner import Runner

    console = _console()
    protocol = load_protocol(args.protocol)
    _load_models(args)
    defense = build_defense(args.defense)
    with _Bars(console) as bars:
        runner = Runner(protocol, data=args.data, on_event=bars)
        plan = find_plan(runner, args.knowledge, args.attack)
        out = Path(args.out) if args.out else Path(f"{protocol.name}-{defense.spec}-{args.knowledge}.npz".replace(
            "/", "_").replace(" ", ""))
        meta = export_examples(runner, defense, args.knowledge, plan, out)
    console.print(f"wrote {out}: {meta['knowledge']} {meta['attack']} on {meta['defense']} "
                  f"({meta['data']['n']} images of {meta['protocol']['name']})", markup=False, soft_wrap=True)
    return 0


def _run_job(args: argparse.Namespace, protocol, defenses, console, models: list[str], provenance: dict) -> int:
    """``run`` as one job of a split protocol: writes partial results for ``merge``."""
    from bench.eval.cache import AdversarialCache
    from bench.eval.jobs import Selection, Shard, partials_dir, save_partial

    shard = Shard.parse(args.shard) if args.shard else Shard()
    selection = Selection(tuple(args.attack or ()), tuple(args.knowledge or ()))
    root = _writable(partials_dir(args.partials), "partial results")
    _score(protocol, defenses, console, data=args.data, cache=AdversarialCache(enabled=not args.no_cache),
           job=(shard, selection), extra=provenance, command=lambda d: _run_command(args.protocol, d.spec, models),
           on_result=lambda p: console.print(f"wrote {save_partial(root, p)}"))
    merge = ["shieldbench", "merge", "--protocol", protocol.name] + (["--partials", args.partials] if args.partials else [])
    console.print(f"when every job has run: {shell_join(merge)}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from bench.eval.jobs import load_partials, partials_dir
    from bench.eval.merge import merge_partials
    from bench.eval.protocol import load_protocol
    from bench.eval.results import save_result

    console = _console()
    protocol = load_protocol(args.protocol)
    root = partials_dir(args.partials)
    partials = load_partials(root, protocol.name)
    if args.defense:
        partials = [p for p in partials if p.header.defense.spec in set(args.defense)]
    if not partials:
        raise ValueError(f"no partial results of protocol {protocol.name!r} under {root}"
                         + (f" for {args.defense}" if args.defense else ""))
    results = merge_partials(protocol, partials)
    out = _results_dir(args)
    for r in results:
        console.print(f"wrote {save_result(out, r)} (from {r.provenance.jobs} partial(s))")
    _render(out, console)
    _rows(results, console)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from bench.eval.jobs import job_argvs, job_commands, partials_dir
    from bench.eval.protocol import load_protocol

    protocol = load_protocol(args.protocol)
    if args.shards < 1:
        raise ValueError(f"--shards must be at least 1, got {args.shards}")
    specs = args.defense or list(protocol.defenses)
    models, _ = _load_models(args)
    if not args.slurm:
        for line in job_commands(protocol, specs, args.shards, args.split_attacks, args.partials, models):
            print(line)
        return 0
    from bench.eval.slurm import SlurmOptions, write_slurm

    options = SlurmOptions(args.max_parallel, args.cpus_per_task, args.mem, args.time, args.partition, args.gres,
                           f"shieldbench-{protocol.name}")
    partials = str(partials_dir(args.partials).resolve())
    merge = ["shieldbench", "merge", "--protocol", protocol.name, "--partials", partials]
    for spec in args.defense or []:
        merge += ["--defense", spec]
    if args.results:
        merge += ["--results", str(Path(args.results).resolve())]
    jobs = job_argvs(protocol, specs, args.shards, args.split_attacks, partials,
                     _model_argv([str(Path(f).resolve()) for f in args.model or []]))
    command = shell_join(["shieldbench", "jobs", "--protocol", protocol.name, "--shards", str(args.shards),
                          *(["--split-attacks"] if args.split_attacks else []), "--slurm", str(args.slurm)])
    written = write_slurm(args.slurm, jobs, merge, options, command)
    console = _console()
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"{len(jobs)} jobs; submit them with: bash {written[-1]}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from bench.eval.results import save_result
    from bench.submissions.submit import CHECKS, check_fresh_load, submission_defenses, submission_sha256, validate_defense

    console = _console()
    models, provenance = _load_models(args)
    if not args.trust and args.timeout <= 0:
        raise ValueError("--timeout must be positive for a sandboxed submission (each call of its code has it)")
    # trusted code runs here, under a SIGALRM deadline; sandboxed code has one per request
    limit = _deadline(args.timeout, f"{args.file}: loading the file and its contract checks") if args.trust else (
        contextlib.nullcontext())
    with limit:
        defenses = submission_defenses(args.file, trust=args.trust, timeout=args.timeout)
        for d in defenses:
            validate_defense(d)  # sandboxed: also the `fresh` check, in the sandbox
            if args.trust:
                check_fresh_load(args.file, d)
            where = "" if args.trust else ", in the sandbox and through it"
            console.print(f"[green]{d.spec}: contract checks passed[/] ({', '.join(CHECKS)}){where}")
    isolation = _isolation(defenses) if not args.trust else None
    submission = {"submission": {"path": str(args.file), "sha256": submission_sha256(args.file),
                                 "trusted": bool(args.trust), **({"isolation": isolation} if isolation else {})},
                  **provenance}
    if args.record:
        _writable(_results_dir(args), "results")
    results = _score(args.protocol, defenses, console, data=args.data, extra=submission,
                     command=lambda d: shell_join(["shieldbench", "submit", str(args.file), "--protocol",
                                                   args.protocol, *models, *(["--trust"] if args.trust else []),
                                                   "--record"]))
    _rows(results, console)
    if args.record:
        root = _results_dir(args)
        for r in results:
            console.print(f"wrote {save_result(root, r)}")
        _render(root, console)
    else:
        console.print("not recorded (add --record to write the results and the leaderboard)")
    return 0


def _isolation(defenses: list) -> dict | None:
    """What the sandbox of a submission's defenses applied (``bench.submissions.isolation.Confinement``)."""
    from bench.submissions.sandbox import RemoteTransform

    for d in defenses:
        for t in d.transforms:
            if isinstance(t, RemoteTransform):
                c = t.box.confinement
                return {k: c[k] for k in ("landlock_abi", "network", "cpu_seconds", "warnings")}
    return None


@contextlib.contextmanager
def _deadline(seconds: float, what: str):
    """Raises ``TimeoutError`` (a clean CLI error) when the block runs longer than ``seconds``.

    A submission's own code (its import, tracing its transform, the contract checks) runs
    under it, so one that sleeps or loops fails with a message instead of hanging silently.
    SIGALRM interrupts Python code, not a long call inside XLA; without SIGALRM (Windows, or
    off the main thread) there is no limit.
    """
    if seconds <= 0 or not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"{what} took longer than --timeout {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _reload(result: Result, recorded: dict, what: str, hint: str, load, console) -> None:
    """Loads a file a stored result recorded (``{"path", "sha256"}``), saying if it changed since.

    Raises:
        ValueError: the file is missing.
    """
    from bench.submissions.submit import submission_sha256

    path = Path(recorded["path"])
    if not path.is_file():
        raise ValueError(f"{result.spec}: its {what} {path} is missing{hint}")
    if submission_sha256(path) != recorded["sha256"]:
        console.print(f"[yellow]{path} changed since its results were recorded[/]")
    load(path)


def _same_data(stored: list[Result], args: argparse.Namespace) -> None:
    """Refuses to compare results computed on another copy of the data (e.g. PNG vs JPEG CIFAR-10)."""
    from bench.core.data import load_dataset

    from bench.eval.protocol import load_protocol

    first, protocol = stored[0].data, load_protocol(args.protocol)
    ds = load_dataset(first.dataset, first.split, data=args.data, image_size=protocol.image_size,
                      resize=protocol.resize)  # the protocol's crop: the same pixels the results were scored on
    for r in stored:
        if r.data.source_sha256 not in (None, ds.source_sha256):
            raise ValueError(
                f"the stored {args.protocol} result of {r.spec!r} was computed on data with source "
                f"sha256 {r.data.source_sha256[:16]}..., but the data found here ({ds.source}) has "
                f"{ds.source_sha256[:16]}...: a re-run would score other images. Point --data at the same copy, "
                f"or record results on this one with `shieldbench run`.")


def cmd_check(args: argparse.Namespace) -> int:
    from bench.core.defense import build_defense
    from bench.reports.leaderboard import compare, format_changes
    from bench.eval.results import load_results

    from bench.eval.protocol import load_protocol

    console = _console()
    _load_models(args)
    stored = load_results(_results_dir(args), load_protocol(args.protocol).name)  # a name or a protocol file
    if args.defense:
        stored = [r for r in stored if r.spec in set(args.defense)]
        missing = set(args.defense) - {r.spec for r in stored}
        if missing:
            raise ValueError(f"no stored {args.protocol} results for {sorted(missing)}")
    if not stored:
        raise ValueError(f"no stored results for protocol {args.protocol!r} in {_results_dir(args)}")
    _same_data(stored, args)
    from bench.submissions.submit import load_model_file, load_submission, sandboxed_submission
    from bench.zoo.user_models import USER_MODELS

    for r in stored:  # files a result was scored with: load them again (they should be unchanged)
        sub = r.provenance.submission
        if sub and r.spec.split("(")[0] not in _registered_names():
            # the same way it was scored: in its sandbox unless it was trusted
            load = load_submission if sub.get("trusted") else lambda f: sandboxed_submission(f)[0]
            _reload(r, sub, "submission file", "", load, console)
        for f in r.provenance.model_files or ():  # the --model files
            if not set(f["models"]) <= set(USER_MODELS):
                _reload(r, f, "model file", " (give it with --model)", load_model_file, console)
    import tempfile

    from bench.eval.cache import AdversarialCache

    commands = {r.spec: r.provenance.command for r in stored}
    with tempfile.TemporaryDirectory(prefix="shieldbench-check-") as tmp:
        # an honest re-run crafts every example again, once per protocol (not once per defense)
        cache = AdversarialCache() if args.cached else AdversarialCache(Path(tmp))
        fresh = _score(args.protocol, [build_defense(spec) for spec in commands], console, data=args.data,
                       cache=cache, command=lambda d: commands[d.spec])
    from bench.eval.reproduce import describe_flips, expectations, flips

    expected = expectations(stored, fresh)
    moved = {c.defense for c in compare(stored, fresh, 0.0)}  # any number not reproduced exactly
    by_spec = {r.spec: r for r in stored}
    for f in fresh:
        spec = f.spec
        what, flipped = expected.get(spec, []), flips(by_spec[spec], f)
        images = ("no per-image outcomes were stored with it (an older result): compared by its numbers only"
                  if flipped is None else describe_flips(flipped))
        if what:
            console.print(f"[yellow]{spec}: {'; '.join(what)}; {images}[/]", soft_wrap=True)
        elif spec in moved or flipped:
            console.print(f"[yellow]{spec}: the same code, models and versions, which should reproduce every "
                          f"number exactly, did not (another machine's floating point?); {images}[/]",
                          soft_wrap=True)
        else:
            console.print(f"{spec}: the same code, models and versions: reproduced exactly, as expected",
                          soft_wrap=True)
    within = ("each number's sampling noise (3 standard errors, at least one image)" if args.tolerance is None
              else f"{args.tolerance}")
    changes = compare(stored, fresh, args.tolerance)
    if changes:
        console.print(f"[red]{len(changes)} number(s) moved by more than {within}:[/]")
        console.print(format_changes(changes), markup=False, soft_wrap=True)  # a table: never wrap mid-row
        return 1
    exact = len(expected) - len(moved & set(expected))
    console.print(f"[green]ok[/]: {len(stored)} defense(s) reproduce their stored {args.protocol} numbers "
                  f"within {within} ({exact} of them exactly)", soft_wrap=True)
    return 0


def _reports(store, reports: list, check: bool, console, hint: str) -> int:
    """Runs ``reports`` on ``store`` (``bench.reports.report.run``) and says what it wrote or found."""
    from bench.reports.report import run

    outcome = run(store, reports, check=check)
    for page, why in outcome.orphans.items():
        console.print(f"stale: {page} ({why})", soft_wrap=True)
    if check:
        if outcome.changed:
            console.print(f"stale (run `{hint}`): " + ", ".join(map(str, outcome.changed)), soft_wrap=True)
        if outcome.changed or outcome.orphans:
            return 1
        console.print("generated files are up to date")
        return 0
    for path in outcome.changed:
        console.print(f"wrote {path}")
    if not outcome.changed:
        console.print("generated files were already up to date")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.reports.report import Store, selected

    store = Store.at(_results_dir(args), args.readme)
    return _reports(store, selected(args.only or ()), args.check, _console(), "shieldbench report")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """``report --only leaderboard shield`` with ``--out`` (kept: the pages name this command)."""
    from bench.reports.leaderboard import LeaderboardPages
    from bench.reports.report import Store
    from bench.reports.shield_report import ShieldReport

    store = Store.at(_results_dir(args))
    return _reports(store, [LeaderboardPages(args.out), ShieldReport()], args.check, _console(),
                    "shieldbench leaderboard")


def cmd_list(args: argparse.Namespace) -> int:
    from attacks.specs import ATTACKS
    from bench.core.defense import DEFENSES
    from bench.eval.protocol import list_protocols
    from bench.core.transform import TRANSFORMS
    from bench.zoo.store import list_models

    console = _console()
    for title, names in (("transforms", TRANSFORMS.names()), ("defenses", DEFENSES.names()),
                         ("attacks", ATTACKS.names()), ("protocols", list_protocols()), ("models", list_models())):
        console.print(f"[bold]{title}[/]: {', '.join(names) if names else '(none)'}")
    return 0


def add_parsers(sub, data_help: str) -> None:
    """Adds the benchmark subcommands to the CLI's subparsers."""
    results_help = "results directory (default: leaderboards/results in the checkout)"
    r = sub.add_parser("run", help="score defenses under a protocol, write results and leaderboards")
    r.add_argument("--protocol", default=DEFAULT_PROTOCOL, help=f"protocol name (default {DEFAULT_PROTOCOL})")
    r.add_argument("--defense", action="append", help="defense spec, e.g. 'jpeg(quality=75)' (repeatable; "
                   "default: the protocol's list)")
    r.add_argument("--no-cache", action="store_true", help="recraft adversarial examples instead of reusing them")
    r.add_argument("--results", help=results_help)
    r.add_argument("--data", help=data_help)
    r.add_argument("--model", action="append", metavar="FILE", help=MODEL_HELP)
    job = r.add_argument_group("one job of a split protocol (writes partial results; see `shieldbench jobs`)")
    job.add_argument("--shard", metavar="K/N", help="only the K-th of N blocks of every attack's batches (K from 1)")
    job.add_argument("--attack", action="append", help="only this attack spec of the protocol (repeatable)")
    job.add_argument("--knowledge", action="append", choices=LEVELS,
                     help="only this knowledge level (repeatable)")
    job.add_argument("--partials", help="partial results directory (default: <cache>/partials)")
    r.set_defaults(func=cmd_run)

    m = sub.add_parser("merge", help="merge the partial results of a split protocol into results and leaderboards")
    m.add_argument("--protocol", default=DEFAULT_PROTOCOL)
    m.add_argument("--defense", action="append", help="only these defenses (repeatable; default: all with partials)")
    m.add_argument("--partials", help="partial results directory (default: <cache>/partials)")
    m.add_argument("--results", help=results_help)
    m.set_defaults(func=cmd_merge)

    j = sub.add_parser("jobs", help="print one `shieldbench run` command per job of a split protocol")
    j.add_argument("--protocol", default=DEFAULT_PROTOCOL)
    j.add_argument("--defense", action="append", help="defense spec (repeatable; default: the protocol's list)")
    j.add_argument("--model", action="append", metavar="FILE", help=MODEL_HELP)
    j.add_argument("--shards", type=int, default=1, help="image shards per job list (default 1)")
    j.add_argument("--split-attacks", action="store_true", help="one job per attack and knowledge level")
    j.add_argument("--partials", help="partial results directory the jobs write to (default: <cache>/partials)")
    sl = j.add_argument_group("a SLURM job array instead of printed commands (see bench/eval/slurm.py)")
    sl.add_argument("--slurm", metavar="DIR", help="write array.sbatch, merge.sbatch and submit.sh into DIR")
    sl.add_argument("--max-parallel", type=int, default=4, help="array tasks running at once (default 4)")
    sl.add_argument("--cpus-per-task", type=int, default=1, help="--cpus-per-task of each task (default 1)")
    sl.add_argument("--mem", help="--mem of each task, e.g. 8G")
    sl.add_argument("--time", help="--time of each task, e.g. 2:00:00")
    sl.add_argument("--partition", help="SLURM partition")
    sl.add_argument("--gres", help="generic resources per task, e.g. gpu:1")
    sl.add_argument("--results", help="results directory the merge job writes (default: leaderboards/results)")
    j.set_defaults(func=cmd_jobs)

    s = sub.add_parser("submit", help="validate and score a defense file (see README)")
    s.add_argument("file", help="Python file registering a transform or defense")
    s.add_argument("--protocol", default=DEFAULT_PROTOCOL)
    s.add_argument("--record", action="store_true", help="write the results and update the leaderboard")
    s.add_argument("--results", help=results_help)
    s.add_argument("--data", help=data_help)
    s.add_argument("--model", action="append", metavar="FILE", help=MODEL_HELP)
    s.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="limit on loading the file, its contract checks and (sandboxed) each call of its code "
                        "(default 600; 0: none when trusted)")
    s.add_argument("--trust", action="store_true",
                   help="run the file in this process instead of the sandbox (only for code you trust: it could "
                        "change the harness, your files or the results)")
    s.set_defaults(func=cmd_submit)

    x = sub.add_parser("export", help="write a defense's adversarial images with their indices (.npz)")
    x.add_argument("--protocol", default=DEFAULT_PROTOCOL)
    x.add_argument("--defense", required=True, help="defense spec")
    x.add_argument("--model", action="append", metavar="FILE", help=MODEL_HELP)
    x.add_argument("--knowledge", default="adaptive", choices=LEVELS)
    x.add_argument("--attack", help="attack spec of the protocol (default: its largest worst-case ensemble)")
    x.add_argument("--out", help="output .npz (default: <protocol>-<defense>-<knowledge>.npz)")
    x.add_argument("--data", help="data location (as for run)")
    x.set_defaults(func=cmd_export)

    c = sub.add_parser("check", help="re-run stored results and fail if a number moved (CI regression mode)")
    c.add_argument("--protocol", default=DEFAULT_PROTOCOL)
    c.add_argument("--defense", action="append", help="only these stored defenses (repeatable)")
    c.add_argument("--model", action="append", metavar="FILE", help=MODEL_HELP)
    c.add_argument("--tolerance", type=tolerance, default=None, metavar="auto|FRACTION",
                   help="allowed change of an accuracy: 'auto' (the default) allows each number 3 standard "
                        "errors of its draws' sampling noise and at least one image; or one fraction in [0, 1) "
                        "for every number (0.02 = 2 points)")
    c.add_argument("--cached", action="store_true", help="reuse cached adversarial examples (faster, less strict)")
    c.add_argument("--results", help=results_help)
    c.add_argument("--data", help=data_help)
    c.set_defaults(func=cmd_check)

    lb = sub.add_parser("leaderboard", help="render leaderboards/<protocol>.md from the results JSON")
    lb.add_argument("--check", action="store_true", help="exit 1 if a markdown file is stale; write nothing")
    lb.add_argument("--results", help=results_help)
    lb.add_argument("--out", help="markdown directory (default: the results directory's parent)")
    lb.set_defaults(func=cmd_leaderboard)

    from bench.reports.report import REPORTS

    rp = sub.add_parser("report", help="render every generated file (leaderboard pages, README blocks, the SHIELD "
                                       "report) from the stored results; --check: exit 1 if one is stale")
    rp.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale; write nothing")
    rp.add_argument("--only", nargs="+", choices=REPORTS.names(), metavar="REPORT",
                    help=f"these reports only ({', '.join(REPORTS.names())}; 'pictures' is drawn only when named)")
    rp.add_argument("--results", help=results_help)
    rp.add_argument("--readme", help="README whose generated blocks to render (default: the one two levels above "
                                     "the results directory, if any)")
    rp.set_defaults(func=cmd_report)

    ls = sub.add_parser("list", help="list transforms, defenses, attacks, protocols and models")
    ls.set_defaults(func=cmd_list)
