"""The request path as a picture: planned (from the inspected world) or live (coloured by check status)."""

from __future__ import annotations

from .checks import Inventory, Result, first_broken_hop
from .context import Context
from .diagram import Hop, Target, path_diagram
from .inspect_vpc import World
from .loadbalancer import desired_subnets


def planned(ctx: Context, world: World):
    """What apply will build, drawn with the real names, ports and AZs it found."""
    p, n = ctx.params, ctx.names
    subnets = desired_subnets(ctx, world)
    azs = sorted({world.subnet(s)["az"] for s in subnets if world.subnet(s)})
    hops = [
        Hop("domain", "Custom domain", f"{p.api.domain_name}/{p.api.base_path}",
            "exists" if world.domain else "MISSING", "pass" if world.domain else "fail"),
        Hop("stage", "REST API stage", f"{n.rest_api} / {p.api.stage}", "{proxy+} ANY HTTP_PROXY"),
        Hop("vpc_link", "VPC link", n.vpc_link, "V1, stage variable vpcLinkId"),
        Hop("nlb", "Internal NLB", n.nlb, f"TCP :{p.listener_port}, {', '.join(azs)}"),
        Hop("target_group", "Target group", n.target_group(p.service.host_port), f"TCP :{p.service.host_port}"),
        Hop("security_group", "Instance SG", "ingress from NLB subnets", f"tcp:{p.service.host_port}"),
    ]
    targets = [Target(i["az"], i["instance_id"], i["private_ip"] or "", p.service.host_port, p.service.container_port,
                      "planned" if i["state"] == "running" else "fail", i["state"])
               for i in world.instances]
    return path_diagram(hops, targets, title=f"planned path for {n.base} ({p.region})")


def live(inv: Inventory, results: list[Result]):
    """The chain as it is now, each hop coloured by its worst check; the first broken hop highlighted."""
    p, n = inv.params, inv.names
    worst: dict[str, str] = {}
    order = {"fail": 3, "warn": 2, "pass": 1, "skip": 0}
    for r in results:
        if order[r.status] >= order.get(worst.get(r.hop, "skip"), 0):
            worst[r.hop] = r.status
    link = inv.link or {}
    tg = next((t for t in inv.target_groups if t["TargetGroupName"] == n.target_group(p.service.host_port)), None)
    listener = next((li for li in inv.listeners if li["Port"] == p.listener_port), None)
    forwards = [inv.listener_groups.get(a.get("TargetGroupArn"), {}).get("TargetGroupName", "?")
                for a in (listener or {}).get("DefaultActions", [])]
    td = inv.task_definition or {}
    host_ports = [m.get("hostPort") for c in td.get("containerDefinitions", []) for m in c.get("portMappings", [])
                  if m["containerPort"] == p.service.container_port]
    endpoint = next((r for r in results if r.hop == "endpoint" and r.status != "skip"), None)
    hops = [
        Hop("mapping", "Custom domain", f"{p.api.domain_name}/{p.api.base_path}",
            f"-> {(inv.mapping or {}).get('restApiId', 'no mapping')} / {(inv.mapping or {}).get('stage', '-')}",
            worst.get("mapping", "unknown")),
        Hop("stage", "Stage", f"{n.rest_api} / {p.api.stage}",
            f"vpcLinkId={(inv.stage or {}).get('variables', {}).get('vpcLinkId', '?')}", worst.get("stage", "unknown")),
        Hop("integration", "Integration", "ANY /{proxy+} HTTP_PROXY",
            (inv.integration or {}).get("uri", "missing"), worst.get("integration", "unknown")),
        Hop("vpc_link", "VPC link", f"{link.get('name', 'missing')} ({link.get('id', '-')})",
            link.get("status", ""), worst.get("vpc_link", "unknown")),
        Hop("nlb", "Internal NLB", n.nlb,
            f"{(inv.lb or {}).get('State', {}).get('Code', 'missing')}, cross-zone "
            f"{'on' if inv.cross_zone else 'off'}", worst.get("nlb", "unknown")),
        Hop("listener", "Listener", f"TCP :{p.listener_port}",
            f"-> {', '.join(forwards)}" if listener else "missing", worst.get("listener", "unknown")),
        Hop("target_group", "Target group", tg["TargetGroupName"] if tg else "missing",
            f"TCP :{tg['Port']}" if tg else "", worst.get("target_group", "unknown")),
    ]
    targets = []
    descs = inv.health.get(tg["TargetGroupArn"], []) if tg else []
    for d in descs:
        inst = inv.instances.get(d["Target"]["Id"], {})
        state = d["TargetHealth"]["State"]
        targets.append(Target(inst.get("Placement", {}).get("AvailabilityZone", "?"), d["Target"]["Id"],
                              inst.get("PrivateIpAddress", ""), d["Target"].get("Port"), p.service.container_port,
                              "pass" if state == "healthy" else "fail",
                              state + (f" ({d['TargetHealth']['Reason']})" if d["TargetHealth"].get("Reason")
                                       else "")))
    if not targets:  # no panel to draw, so the targets hop gets a box of its own
        hops.append(Hop("targets", "Targets", "none registered", "", worst.get("targets", "unknown")))
    hops += [
        Hop("security_group", "Instance SG", f"tcp:{p.service.host_port} from NLB subnets", "",
            worst.get("security_group", "unknown")),
        Hop("task_definition", "Task definition", f"{td.get('family', 'missing')}:{td.get('revision', '-')}",
            f"hostPort {', '.join(map(str, host_ports)) or '?'} -> {p.service.container_port}",
            worst.get("task_definition", "unknown")),
        Hop("service", "ECS service", n.ecs_service,
            f"running {(inv.service or {}).get('runningCount', 0)}/{p.service.desired_count}",
            worst.get("service", "unknown")),
        Hop("endpoint", "End to end", "TestInvoke / custom domain",
            endpoint.detail if endpoint else "not served here (skipped)", worst.get("endpoint", "unknown")),
    ]
    return path_diagram(hops, targets, title=f"live path for {n.base}", highlight=first_broken_hop(results))
