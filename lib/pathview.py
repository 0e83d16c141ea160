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
    tg = next((t for t in inv.target_groups if t["Port"] == p.service.host_port), None)
    hops = [
        Hop("mapping", "Custom domain", f"{p.api.domain_name}/{p.api.base_path}",
            f"-> {(inv.mapping or {}).get('restApiId', '?')}", worst.get("mapping", "unknown")),
        Hop("stage", "Stage", f"{n.rest_api} / {p.api.stage}",
            f"vpcLinkId={(inv.stage or {}).get('variables', {}).get('vpcLinkId', '?')}", worst.get("stage", "unknown")),
        Hop("integration", "Integration", "ANY /{proxy+} HTTP_PROXY",
            (inv.integration or {}).get("uri", "missing"), worst.get("integration", "unknown")),
        Hop("vpc_link", "VPC link", f"{link.get('name', 'missing')} ({link.get('id', '-')})",
            link.get("status", ""), worst.get("vpc_link", "unknown")),
        Hop("nlb", "Internal NLB", n.nlb, (inv.lb or {}).get("State", {}).get("Code", "missing"),
            worst.get("nlb", "unknown")),
        Hop("listener", "Listener", f"TCP :{p.listener_port}", "", worst.get("listener", "unknown")),
        Hop("target_group", "Target group", tg["TargetGroupName"] if tg else "missing",
            f"TCP :{tg['Port']}" if tg else "", worst.get("target_group", "unknown")),
        Hop("security_group", "Instance SG", f"tcp:{p.service.host_port} from NLB subnets", "",
            worst.get("security_group", "unknown")),
        Hop("service", "ECS service", n.ecs_service,
            f"running {(inv.service or {}).get('runningCount', 0)}/{p.service.desired_count}",
            worst.get("service", "unknown")),
    ]
    targets = []
    for descs in inv.health.values() if tg is None else [inv.health.get(tg["TargetGroupArn"], [])]:
        for d in descs:
            inst = inv.instances.get(d["Target"]["Id"], {})
            state = d["TargetHealth"]["State"]
            targets.append(Target(inst.get("Placement", {}).get("AvailabilityZone", "?"), d["Target"]["Id"],
                                  inst.get("PrivateIpAddress", ""), d["Target"].get("Port"), p.service.container_port,
                                  "pass" if state == "healthy" else "fail",
                                  state + (f" ({d['TargetHealth']['Reason']})" if d["TargetHealth"].get("Reason")
                                           else "")))
    hop = first_broken_hop(results)
    highlight = {"targets": "target_group", "endpoint": None}.get(hop, hop) if hop else None
    return path_diagram(hops, targets, title=f"live path for {n.base}", highlight=highlight)
