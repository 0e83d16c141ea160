"""The `runbook` command: plan, apply, verify, runs, request, sandbox (the contract: README.md, The runbook command)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from vpclink_runbooks.errors import RunbookError


def _run(args) -> int:
    from vpclink_runbooks.present import terminal
    from vpclink_runbooks.run.runner import run

    if isinstance(args.env, list):  # apply and destroy take several environments
        if len(args.env) > 1:
            from vpclink_runbooks.run.runner import run_many

            return run_many(args.env, command=args.command, parallel=args.parallel, confirm=args.confirm,
                            log_output=args.log_output, yes=getattr(args, "yes", False))
        args.env = args.env[0]
    result = run(args.command, args.env, confirm=getattr(args, "confirm", None), log_output=args.log_output,
                 yes=getattr(args, "yes", False))
    print(terminal.summary(result))
    return result.exit_code


def _sequence(args) -> int:
    """Several commands over one sandbox (what `make run` does): plan, apply, verify."""
    from vpclink_runbooks import sandbox_link
    from vpclink_runbooks.params import load_params
    from vpclink_runbooks.present import terminal
    from vpclink_runbooks.run.runner import run

    params = load_params(args.env)
    owned = sandbox_link.ensure_sandbox(params) if params.sandbox else None
    try:
        code = 0
        for command in args.commands:
            result = run(command, args.env, log_output=args.log_output)
            print(terminal.summary(result))
            print()
            code = code or result.exit_code
            if result.exit_code:
                break
        print(f"audit records: {Path(result.run_dir).parent}  (open index.html in a run folder)")
        return code
    finally:
        if owned is not None:
            owned.stop()


def _sandbox(args) -> int:
    from vpclink_runbooks import sandbox_link
    from vpclink_runbooks.params import load_params
    from vpclink_runbooks.sandbox.profile import Profile, current
    from vpclink_runbooks.sandbox.server import start_sandbox

    params = load_params(args.env)
    world = None if args.empty else sandbox_link.world_spec_for(params)
    if args.scale is not None and not args.aws_like:
        print("error: --scale goes with --aws-like", file=sys.stderr)
        return 2
    # without --aws-like, RUNBOOK_SANDBOX_PROFILE / RUNBOOK_SANDBOX_SCALE may still ask for the profile
    profile = Profile(scale=args.scale if args.scale is not None else 1.0) if args.aws_like else None
    sandbox = start_sandbox(account_id=args.account_id or params.account_id, region=params.region, world=world,
                            profile=profile)
    state = sandbox_link.announce(sandbox)
    print(f"sandbox running at {sandbox.endpoint} ({'empty' if args.empty else 'seeded for ' + params.environment})")
    if (active := current()[0]) is not None:
        print(f"AWS-like profile: {active.latency * 1000:.0f} ms a call, transitions and API Gateway quotas at "
              f"scale {active.scale:g}")
    print(f"front (custom domains and invoke URLs, plain HTTP): {sandbox.front}  e.g. "
          f"curl -H 'Host: {params.api.domain_name}' {sandbox.front}/{params.api.base_path}/x")
    print("other `runbook` commands on this machine find it automatically; elsewhere run:")
    for key, value in sandbox.env().items():
        print(f"export {key}={value}")
    print("Ctrl-C stops it.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        state.unlink(missing_ok=True)
        sandbox.stop()
    return 0


def _request(args) -> int:
    """One request to https://<domain>/<base_path>/<PATH>; exit 0 when the service answered."""
    from vpclink_runbooks import request, sandbox_link
    from vpclink_runbooks.params import load_params

    params = load_params(args.env)
    owned = sandbox_link.ensure_sandbox(params) if params.sandbox else None
    try:
        answer = request.send(params.api.domain_name, params.api.base_path, args.path or "", method=args.method)
        print("\n".join(request.summary(answer)))
        return 0 if answer["service_answered"] else 1
    finally:
        if owned is not None:
            owned.stop()


def _lab(args) -> int:
    from vpclink_runbooks.run.lab import lab

    return lab(args)


def _unlock(args) -> int:
    """Show who holds the environment's lock; with --force, break it (for a run that died)."""
    from vpclink_runbooks import sandbox_link
    from vpclink_runbooks.aws import session as aws_mod
    from vpclink_runbooks.params import load_params
    from vpclink_runbooks.run import lock

    params = load_params(args.env)
    if params.sandbox:
        sandbox_link.use_running_sandbox()
    aws = aws_mod.Aws(aws_mod.make_session(params))
    aws_mod.check_account(aws, params)
    holder = lock.read(aws.ssm, params.environment)
    if holder is None:
        print(f"{params.environment} is not locked ({lock.parameter_name(params.environment)} does not exist)")
        return 0
    print(f"{params.environment} is locked by {lock.describe(holder)}")
    if lock.holder_gone(holder):
        print(f"its process (pid {holder['pid']}) is gone from this host: that run is dead. The next run on this "
              f"host takes the lock over by itself; `runbook unlock {args.env} --force` breaks it now.")
    if not args.force:
        print("if that run is dead (killed, or its machine is gone), break the lock with "
              f"`runbook unlock {args.env} --force`", file=sys.stderr)
        return 2
    broken = lock.break_lock(aws.ssm, params.environment)
    print("lock broken" if broken else "the lock was released meanwhile")
    return 0


def _runs_env(env: str | None):
    """ENV of `runbook runs`: an environment name (runs/<name>/) or a params file; returns (name, params or None)."""
    from vpclink_runbooks.params import load_params, resolve_params_path

    if env is None:
        return None, None
    if resolve_params_path(env).exists():
        params = load_params(env)
        return params.environment, params
    return env, None


def _s3_client(params):
    """S3 through boto3's standard configuration; the params' profile/role/region (and sandbox) when given."""
    import boto3

    from vpclink_runbooks import sandbox_link
    from vpclink_runbooks.aws import session as aws_mod

    if params is None:
        return boto3.Session().client("s3", config=aws_mod.RETRY_CONFIG)
    if params.sandbox:
        sandbox_link.use_running_sandbox()
    return aws_mod.make_session(params).client("s3", config=aws_mod.RETRY_CONFIG)


def _runs(args) -> int:
    from vpclink_runbooks.run import audit
    from vpclink_runbooks.run.runner import runs_root, seal_interrupted

    root = runs_root()
    env, params = _runs_env(args.env)
    if args.push:
        try:
            audit.parse_s3_url(args.push)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    envs = [env] if env else sorted(p.name for p in root.glob("*") if p.is_dir())
    for name in envs:  # runs killed on this host are sealed as interrupted first (like every command does)
        seal_interrupted(name)
    unsealed = audit.unsealed_dirs(root, env)

    def pending(run_dir) -> tuple[str, str]:  # a folder without run.json: (status, why it is not sealed)
        marker = audit.read_marker(run_dir)
        if marker is None:
            return "unknown", "no run record yet (starting, or killed by an older version)"
        return "running", f"not sealed yet: pid {marker.get('pid')} on host {marker.get('host')}"

    if args.verify or args.push:
        problems = audit.verify(root, env)
        for p in problems:
            print(f"TAMPERED {p['environment']}/{p['run_id']}  {p['file']}: {p['problem']}")
        records = audit.run_dirs(root, env)
        if problems:
            runs = sorted({f"{p['environment']}/{p['run_id']}" for p in problems})
            print(f"{len(runs)} of {len(records)} run record(s) changed after the fact: {', '.join(runs)}",
                  file=sys.stderr)
            if args.push:
                print("not pushing records that fail verification", file=sys.stderr)
            return 1
        print(f"{len(records)} run record(s) intact: artifacts and the chain of records verify")
        if unsealed:
            print(f"{len(unsealed)} run folder(s) not sealed yet (still running, or another host's): "
                  + ", ".join(f"{d.parent.name}/{d.name} ({pending(d)[1]})" for d in unsealed))
        if args.push:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                keys = audit.push(_s3_client(params), root, args.push, env)
            except (BotoCoreError, ClientError) as exc:
                print(f"error: could not push to {args.push}: {exc}", file=sys.stderr)
                return 1
            print(f"pushed {len(keys)} file(s) of {len(records)} run record(s) to {args.push.rstrip('/')}/")
        return 0
    print(f"{'run':<30} {'environment':<12} {'command':<8} {'status':<11} {'changes':>7}  checks")
    for run_dir in sorted(audit.run_dirs(root, env) + unsealed, key=lambda d: (d.parent.name, d.name)):
        sealed = (run_dir / audit.RECORD).is_file()
        record = json.loads((run_dir / audit.RECORD).read_text()) if sealed else audit.read_marker(run_dir) or {}
        failed = sum(c["status"] == "fail" for c in record.get("checks", []))
        status, why = (record.get("status", "?"), "") if sealed else pending(run_dir)
        print(f"{run_dir.name:<30} {run_dir.parent.name:<12} {record.get('command', '?'):<8} {status:<11} "
              f"{len(record.get('changes', [])):>7}  {len(record.get('checks', []))} ({failed} failed)"
              + (f"  {why}" if why else ""))
    return 0


def _policy(args) -> int:
    """Print the least-privilege IAM policy for plan, apply, verify, repair and destroy of ENV."""
    from vpclink_runbooks import policy
    from vpclink_runbooks.params import load_params

    document = policy.policy_document(load_params(args.env), wildcard_resources=args.any_resource)
    print(json.dumps(document, indent=2))
    return 0


def _export(args) -> int:
    """Write Terraform import blocks and resources for what the runbook created (read-only)."""
    from vpclink_runbooks.export import export

    result, out = export(args.env, args.out, args.format)
    print(result.summary(out))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="runbook", description="Expose a private ECS service through "
                                  "API Gateway, a VPC link and an internal NLB.")
    sub = top.add_subparsers(dest="command", required=True)
    _add_run_commands(sub)
    _add_record_commands(sub)
    _add_sandbox_commands(sub)
    return top


def _add_run_commands(sub) -> None:
    """The commands that run notebooks: plan, apply, verify, destroy, repair."""
    for name, text in (("plan", "read-only: what apply would change"),
                       ("apply", "converge, then verify"),
                       ("verify", "read-only hop-by-hop checks of the live chain"),
                       ("destroy", "remove what apply created, in safe order (plan unless --yes)"),
                       ("repair", "fix the failed checks the runbook owns, then verify (plan unless --yes)")):
        p = sub.add_parser(name, help=text)
        if name in ("destroy", "repair"):
            p.add_argument("--yes", action="store_true", help="apply the plan (otherwise only show it)")
        if name in ("apply", "destroy"):
            p.add_argument("env", nargs="+", help="params/ENV.yaml or a path to a YAML file; several: one run "
                           "(own lock and record) each")
            p.add_argument("--parallel", type=int, default=1, metavar="N",
                           help=f"with several ENVs: {name} at most N at once (default 1)")
        else:
            p.add_argument("env", help="params/ENV.yaml or a path to a YAML file")
        p.add_argument("--confirm", help="ENV@ACCOUNT, required for protected environments")
        p.add_argument("--log-output", action="store_true", help="stream notebook output while it runs")
        p.set_defaults(func=_run)


def _add_record_commands(sub) -> None:
    """sequence, and the commands around the runs: the lock, the audit records, the policy, the export."""
    p = sub.add_parser("sequence", help="several commands over one sandbox, e.g. plan apply verify")
    p.add_argument("env")
    p.add_argument("commands", nargs="+", choices=["plan", "apply", "verify"])
    p.add_argument("--log-output", action="store_true")
    p.set_defaults(func=_sequence)
    p = sub.add_parser("unlock", help="show who holds the environment's lock; --force breaks a stale one")
    p.add_argument("env", help="params/ENV.yaml or a path to a YAML file")
    p.add_argument("--force", action="store_true", help="break the lock (only when its run is dead)")
    p.set_defaults(func=_unlock)
    p = sub.add_parser("runs", help="list audit records; --verify checks them, --push copies them to S3")
    p.add_argument("env", nargs="?", help="an environment name (runs/ENV/) or params file (default: all)")
    p.add_argument("--verify", action="store_true",
                   help="re-hash every record's artifacts and the chain of records; exit 1 if any changed")
    p.add_argument("--push", metavar="S3_URL",
                   help="verify, then upload every run folder to s3://bucket/prefix/ENV/RUN_ID/")
    p.set_defaults(func=_runs)
    p = sub.add_parser("policy", help="print the IAM policy document an operator needs (JSON)")
    p.add_argument("env", help="params/ENV.yaml or a path to a YAML file")
    p.add_argument("--any-resource", action="store_true",
                   help="same actions on Resource '*', without conditions (for emulators that check only actions)")
    p.set_defaults(func=_policy)
    p = sub.add_parser("export", help="read-only: write Terraform import blocks and resources for what the "
                       "runbook created, to adopt it without recreating anything")
    p.add_argument("env", help="params/ENV.yaml or a path to a YAML file")
    p.add_argument("--format", choices=["terraform"], default="terraform", help="output format (terraform)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: terraform/<environment>)")
    p.set_defaults(func=_export)


def _add_sandbox_commands(sub) -> None:
    """The emulator and the tools around it: sandbox, request, lab."""
    p = sub.add_parser("sandbox", help="run the embedded emulator in the foreground")
    p.add_argument("env", nargs="?", default="local", help="params whose world to seed (default: local)")
    p.add_argument("--empty", action="store_true", help="start without seeding a world")
    p.add_argument("--account-id", help="the account the emulator answers as (default: ENV's account_id)")
    p.add_argument("--aws-like", action="store_true", help="AWS-like profile: 80 ms a call, AWS's transition "
                   "times and API Gateway's management quotas (429 TooManyRequestsException)")
    p.add_argument("--scale", type=float, metavar="F", help="with --aws-like: delays and quota periods times F "
                   "(0.1: ten times faster; default 1, AWS's own)")
    p.set_defaults(func=_sandbox)
    p = sub.add_parser("request", help="send one request through the custom domain; exit 0 when the service "
                       "answered, 1 when API Gateway or the network answered")
    p.add_argument("env", help="params/ENV.yaml or a path to a YAML file")
    p.add_argument("path", nargs="?", default="", help="path under the base path (default: the base path itself)")
    p.add_argument("--method", default="GET", help="HTTP method (default GET)")
    p.set_defaults(func=_request)
    p = sub.add_parser("lab", help="JupyterLab on working copies of the notebooks for ENV (runs/ENV/lab/), "
                       "over a sandbox when params say so; runs in apply/repair take ENV's lock and are recorded")
    p.add_argument("env", nargs="?", default="local", help="params/ENV.yaml or a path to a YAML file (default: local)")
    p.set_defaults(func=_lab)


def _stream_papermill_log() -> None:
    """--log-output: papermill logs each cell's output at INFO; show it on stderr."""
    import logging

    log = logging.getLogger("papermill")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "log_output", False):
        _stream_papermill_log()
    try:
        return args.func(args)
    except RunbookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
