"""The `driftwatch` command line: run, replay, demo, check-config, silence, routes."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from alerts.model import Alert

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="driftwatch", description=__doc__)
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="consume Kafka and alert (the daemon)")
    run.add_argument("--config", required=True)

    rp = sub.add_parser("replay", help="run the pipeline over JSONL(.gz) files in event time")
    rp.add_argument("files", nargs="+")
    rp.add_argument("--config")
    rp.add_argument("--alerts-out", help="write every alert state change here as JSON lines")
    rp.add_argument("--notify", action="store_true",
                    help="also deliver alerts to the configured receivers")

    demo = sub.add_parser("demo", help="embedded broker + traffic with injected faults")
    demo.add_argument("--timeout", type=float, default=110.0)

    cc = sub.add_parser("check-config", help="validate a config file")
    cc.add_argument("file")

    sil = sub.add_parser("silence", help="mute matching alerts for a while (in the store)")
    ssub = sil.add_subparsers(dest="silence_command", required=True)
    sa = ssub.add_parser("add", help="add a silence")
    sa.add_argument("--config")
    sa.add_argument("--duration", default="1h", help='how long, e.g. "2h" (default 1h)')
    sa.add_argument("--author", required=True)
    sa.add_argument("--comment", required=True)
    sa.add_argument("matchers", nargs="+", metavar='name="value"')
    sl = ssub.add_parser("list", help="list silences")
    sl.add_argument("--config")
    sl.add_argument("--all", action="store_true", help="include expired silences")
    se = ssub.add_parser("expire", help="end a silence now")
    se.add_argument("--config")
    se.add_argument("id")

    vs = sub.add_parser("versions", help="champion/challenger comparisons: the daemon's "
                        "(from the store) or those of a replay of FILEs")
    vs.add_argument("--config")
    vs.add_argument("--json", action="store_true", help="the /api/models/{model}/versions "
                    "objects, by model")
    vs.add_argument("files", nargs="*", help="replay these JSONL(.gz) files instead of "
                    "reading the store")

    routes = sub.add_parser("routes", help="routing tools")
    rsub = routes.add_subparsers(dest="routes_command", required=True)
    rt = rsub.add_parser("test", help="which receivers a label set reaches")
    rt.add_argument("--config")
    rt.add_argument("labels", nargs="*", metavar="label=value")
    dash = sub.add_parser("dashboards", help="write the Grafana dashboards (JSON) and their "
                          "provisioning file")
    dash.add_argument("--out", default="deploy/grafana", help="folder (default deploy/grafana)")
    dash.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 if the folder's files differ from the code's")
    return p


def cmd_dashboards(out: str, check: bool) -> int:
    from monitor import dashboards

    if check:
        stale = dashboards.stale(out)
        for name in stale:
            print(f"driftwatch: {out}/{name} is not what the code generates", file=sys.stderr)
        return 1 if stale else 0
    for path in dashboards.write(out):
        print(path)
    return 0


def _load(path: str | None):  # type: ignore[no-untyped-def]
    from monitor.config.load import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        if len(exc.problems) == 1:
            print(f"driftwatch: invalid config {path}: {exc.problems[0]}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
        print(f"driftwatch: invalid config {path}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    except FileNotFoundError:
        print(f"driftwatch: config file not found: {path}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    except OSError as exc:
        print(f"driftwatch: cannot read config {path}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_check_config(path: str) -> int:
    from monitor.config.load import check_config

    errors, warnings = check_config(path)
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    if errors:
        print(f"{path}: {len(errors)} error(s)")
        return 1
    print(f"{path}: OK")
    return 0


def cmd_routes_test(config_path: str | None, labels: Sequence[str]) -> int:
    from alerts.routing import RouteTree

    parsed: dict[str, str] = {}
    for item in labels:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"driftwatch: label {item!r} is not of the form name=value", file=sys.stderr)
            return EXIT_CONFIG
        parsed[name] = value.strip('"')
    config = _load(config_path)
    print(",".join(RouteTree(config.route, config.time_intervals).receivers_for(parsed)))
    return 0


def input_problem(path: str) -> str | None:
    """Why a replay input cannot be read (one line), or None."""
    import os

    if not os.path.exists(path):
        return f"{path}: no such file"
    if os.path.isdir(path):
        return f"{path}: is a directory (give the .jsonl files in it)"
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return f"{path}: cannot read: {exc.strerror or exc}"
    return None


def cmd_replay(args: argparse.Namespace) -> int:
    from monitor.replay import replay

    for path in args.files:
        if (problem := input_problem(path)) is not None:
            print(f"driftwatch: replay: {problem}", file=sys.stderr)
            return EXIT_CONFIG
    config = _load(args.config)
    try:
        result = replay(config, args.files, alerts_out=args.alerts_out, notify=args.notify)
    except (OSError, EOFError) as exc:  # a truncated gzip, a file gone mid-read
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = "; ".join(getattr(exc, "__notes__", []))
        print(f"driftwatch: replay: {what}" + (f" ({where})" if where else ""), file=sys.stderr)
        return EXIT_CONFIG
    for a in result.alerts:
        print(replay_line(a))
    muted = sum(1 for a in result.alerts if a.status == "firing" and a.muted_by is not None)
    for model, (have, need) in result.unready.items():
        print(f"driftwatch: {model}: reference not complete ({have} of {need} events): "
              "no drift, latency or error test ran for it", file=sys.stderr)
    print(f"replayed {result.events} events ({result.invalid} invalid), "
          f"{len(result.alerts)} alert state changes, {muted} firing muted",
          file=sys.stderr)
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    """The comparison tables: of a replay of ``args.files``, or else of the daemon's
    latest checkpoints in the store (``[store] url``, its consumer group's rows)."""
    import orjson

    from monitor.versions import VersionWatch, format_table

    config = _load(args.config)
    tables: dict[str, object] = {}
    if args.files:
        from monitor.replay import replay

        result = replay(config, args.files, keep_pipeline=True)
        assert result.pipeline is not None
        watches = [result.pipeline.versions]
    else:
        from monitor.store import Store

        store = Store(config.store.url)
        watches = []
        for name in store.checkpoint_names(config.kafka.group_id):
            found = store.load_checkpoint(name)
            if found is not None:
                w = VersionWatch(config)
                w.load_state(found[0].get("pipeline", {}).get("versions"))
                watches.append(w)
        store.close()
        if not watches:
            print(f"driftwatch: no checkpoint of group {config.kafka.group_id!r} in the store",
                  file=sys.stderr)
    for w in watches:
        for model in sorted(w.models):
            tables[model] = w.table(model)
    if args.json:
        print(orjson.dumps(tables, option=orjson.OPT_INDENT_2).decode())
    else:
        for t in tables.values():
            print(format_table(t))  # type: ignore[arg-type]
    return 0


def replay_line(a: Alert) -> str:
    """One alert state change for a person: when it happened (a resolution's end), what,
    whose, and why nobody was told when it was muted."""
    j = a.to_json()
    lab = a.labels
    when = j["startsAt"] if a.status == "firing" else f"{j['endsAt']}"
    where = " ".join(f"{k}={lab[k]}" for k in ("feature", "segment") if k in lab)
    line = (f"{when} {a.status:8} {lab['alertname']:22} "
            f"model={lab['model']} team={lab['team']} {where}").rstrip()
    if a.status == "resolved":  # a promotion notice never fired: it was compared since
        line += (f" (compared since {j['startsAt']})" if lab.get("verdict") == "no_worse"
                 else f" (fired {j['startsAt']})")
    if a.muted_by is not None:
        line += " muted " + " ".join(f"{k}={v}" for k, v in a.muted_by.items())
    return line


def cmd_silence(args: argparse.Namespace) -> int:
    import time

    from alerts.silences import new_silence
    from monitor.config.check import Bad, parse_duration
    from monitor.silencing import format_silences
    from monitor.store import Store

    store = Store(_load(args.config).store.url)
    now = time.time()
    try:
        if args.silence_command == "add":
            try:
                seconds = parse_duration(args.duration)
            except Bad as exc:
                print(f"driftwatch: --duration {exc.rule} (got {args.duration!r})",
                      file=sys.stderr)
                return EXIT_CONFIG
            try:
                s = new_silence(args.matchers, ends_at=now + seconds, created_by=args.author,
                                comment=args.comment, now=now)
            except ValueError as exc:
                print(f"driftwatch: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            store.put_silence(s)
            print(s.id)
            return 0
        if args.silence_command == "list":
            for line in format_silences(store.silences(
                    active_after=None if args.all else now), now):
                print(line)
            return 0
        if not store.expire_silence(args.id, now):
            print(f"driftwatch: no active silence {args.id!r}", file=sys.stderr)
            return 1
        print(f"expired {args.id}")
        return 0
    finally:
        store.close()


def cmd_run(config_path: str) -> int:
    from monitor.daemon import Daemon
    from monitor.store import Store

    config = _load(config_path)
    # the daemon connects to the database itself (and retries while it is down)
    daemon = Daemon(config, store=Store(config.store.url, connect=False))
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    return daemon.run()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from monitor import logs

    logs.setup(args.log_level)
    if args.command in ("run", "replay", "demo"):
        from monitor.threads import one_blas_thread

        one_blas_thread()
    if args.command == "check-config":
        return cmd_check_config(args.file)
    if args.command == "silence":
        return cmd_silence(args)
    if args.command == "routes":
        return cmd_routes_test(args.config, args.labels)
    if args.command == "replay":
        return cmd_replay(args)
    if args.command == "versions":
        return cmd_versions(args)
    if args.command == "run":
        return cmd_run(args.config)
    if args.command == "dashboards":
        return cmd_dashboards(args.out, args.check)
    if args.command == "demo":
        from monitor.broker import BrokerMissing

        try:
            from monitor.demo import run_demo

            return run_demo(timeout=args.timeout)
        except BrokerMissing as exc:
            print(f"driftwatch: demo: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    raise AssertionError(args.command)


if __name__ == "__main__":
    raise SystemExit(main())
