"""Command line of the suite: ``python3 -m bench [--quick] [--json PATH] [--only NAMES]``."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    asgi_floor,
    autostop,
    cli,
    clusters,
    dashboard,
    jobs,
    load,
    logs,
    managed_jobs,
    requests,
    sandbox,
    serve,
    server,
    sessions,
    ssh,
    throughput,
    uploads,
)
from bench.report import (
    Figure,
    machine,
    machine_line,
    markdown_table,
    text_table,
    write_json,
)
from bench.servers import ApiServer, TrivialServer
from bench.util import Run, environment

HERE = Path(__file__).resolve().parent

#: (group for --only, figure name, unit, function, needs the warm API server), in run order.
FIGURES: list[tuple[str, str, str, Callable[[Run], list[Figure]], bool]] = [
    ("cli", "skyhop --help", "ms", cli.help_start, False),
    ("cli", "skyhop status (warm server)", "ms", cli.status_start, True),
    ("cli", "skyhop cost-report (1,000 rows)", "ms", cli.cost_report_start, True),
    ("server", "server cold start / idle RSS", "ms", server.server_figures, False),
    ("requests", "read round trip (SDK status)", "ms", requests.round_trip, True),
    ("jobs", "exec to first output (UP cluster)", "ms", jobs.exec_first_output, True),
    ("jobs", "launch to first output (new cluster)", "ms", jobs.launch_first_output, True),
    ("uploads", "exec with a workdir (first / unchanged)", "ms", uploads.workdir_figures, True),
    ("sandbox", sandbox.NAME, "ms", sandbox.exec_first_output_sandbox, False),
    ("ssh", ssh.NAME, "ms", ssh.exec_first_output_ssh, False),
    ("ssh_session", sessions.COMMAND, "ms", sessions.command_run, True),
    ("ssh_session", sessions.KEYSTROKE, "ms", sessions.keystroke_round_trip, True),
    ("clusters", "start of an UP cluster (cluster lease)", "ms", clusters.lease_round_trip, True),
    ("autostop", autostop.NAME, "ms", autostop.idle_check, False),
    ("cancel", "cancel latency", "ms", jobs.cancel_latency, True),
    ("logs", "log streaming", "MB/s", logs.log_streaming, True),
    ("load", "reads under load", "ms", load.reads_under_load, True),
    ("throughput", "reads throughput", "req/s", throughput.throughput, True),
    ("burst", "burst of async requests", "s", throughput.burst, True),
    ("asgi_floor", "HTTP stack floor (CPU per request)", "ms", asgi_floor.floor, True),
    ("managed_jobs", "managed echo jobs", "s", managed_jobs.managed_echo, True),
    ("managed_jobs", "managed jobs held RUNNING", "MB", managed_jobs.held_running, False),
    ("serve", "services (load balancer, reactions)", "ms", serve.serve_figures, False),
    ("dashboard", "dashboard first page load", "ms", dashboard.first_load, True),
    ("dashboard", "dashboard log line, job to browser", "ms", dashboard.log_line_latency, True),
]
GROUPS = list(dict.fromkeys(group for group, *_ in FIGURES))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions, 1,000-request burst, 10 MB log (< 1 min)")
    parser.add_argument("--json", type=Path, help="results file "
                        "(default: bench/results-<timestamp>.json)")
    parser.add_argument("--only", help=f"comma-separated groups: {','.join(GROUPS)}")
    parser.add_argument("--results-md", type=Path, metavar="PATH",
                        help="also write the table and the machine as Markdown (RESULTS.md)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the traceback of a figure that fails")
    args = parser.parse_args(argv)
    args.groups = [g.strip() for g in args.only.split(",")] if args.only else list(GROUPS)
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_figures(
    run: Run, groups: list[str], server_error: str | None, verbose: bool = False
) -> list[Figure]:
    chosen = [f for f in FIGURES if f[0] in groups]
    figures: list[Figure] = []
    for i, (group, name, unit, fn, needs_server) in enumerate(chosen, 1):
        log(f"[{i}/{len(chosen)}] {group}: {name} …")
        start = time.perf_counter()
        if needs_server and server_error is not None:
            figures.append(Figure(group, name, unit, error=f"no API server: {server_error}"))
            continue
        try:
            got = fn(run)
        except Exception as exc:
            if verbose:
                traceback.print_exc()
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            got = [Figure(group, name, unit, error=message)]
        figures.extend(got)
        log(f"      done in {time.perf_counter() - start:.1f} s")
    return figures


def teardown_clusters(run: Run) -> None:
    """Down every cluster the warm server knows about (the run's, and any left over)."""
    import skyhop as sky

    names = set(run.clusters)
    with contextlib.suppress(Exception):
        names |= {str(r["name"]) for r in sky.get(sky.status())}
    for name in sorted(names):
        try:
            sky.get(sky.down(name))
        except Exception as exc:
            log(f"warning: down {name}: {type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    mode = "quick" if args.quick else "full"
    log(f"skyhop bench ({mode}) on {machine_line(info)}")
    api, trivial = ApiServer(), TrivialServer()
    server_error = None
    figures: list[Figure] = []
    try:
        trivial.start()
        try:
            api.start()
        except Exception as exc:
            server_error = f"{type(exc).__name__}: {exc}"
        run = Run(args.quick, api, trivial)
        with environment(api.env):
            try:
                figures = run_figures(run, args.groups, server_error, args.verbose)
            finally:
                if server_error is None:
                    teardown_clusters(run)
    finally:
        api.cleanup()
        trivial.stop()
    print()
    print(f"skyhop bench ({mode}) — {machine_line(info)}")
    print(text_table(figures))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.json or HERE / f"results-{stamp}.json"
    write_json(path, figures, {**info, "mode": mode})
    print(f"JSON: {path}")
    if args.results_md:
        args.results_md.write_text(
            f"# Benchmark results ({mode})\n\nMachine: {machine_line(info)}\n\n"
            f"Command: `python3 -m bench{' --quick' if args.quick else ''}`\n\n"
            + markdown_table(figures))
        print(f"Markdown: {args.results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
