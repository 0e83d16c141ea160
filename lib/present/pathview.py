"""The request path as a picture: planned (from the inspected world) or live (coloured by check status)."""

from __future__ import annotations

from vpclink_runbooks.checks import Inventory, Result, first_broken_hop
from vpclink_runbooks.context import Context
from vpclink_runbooks.present.diagram import Hop, Target, path_diagram
from vpclink_runbooks.steps.inspect import World
from vpclink_runbooks.steps.load_balancer import desired_subnets


def planned(ctx: Context, world: World):
    """What apply will build, drawn with the real names, ports and AZs it found."""
    p, n = ctx.params, ctx.names
    subnets = desired_subnets(ctx, world)
    azs = sorted({world.subnet(s)["az"] for s in subnets if world.subnet(s)})
    protocol = "HTTP" if p.nlb.type == "application" else "TCP"
    link_text = ("V1, stage variable vpcLinkId" if p.vpc_link.version == 1 else
                 f"V2, own security group {n.link_security_group}, integrationTarget {n.nlb}")
    if p.awsvpc:
        group = (n.task_security_group, f"tcp:{p.service.container_port} from the load balancer only")
    elif p.dynamic_host_ports:
        group = ("Instance SG", "tcp:32768-65535 from the ALB's security group only")
    else:
        group = ("Instance SG", f"tcp:{p.service.host_port} from NLB subnets")
    hops = [
        Hop("domain", "Custom domain", f"{p.api.domain_name}/{p.api.base_path}",
            "exists" if world.domain else "MISSING", "pass" if world.domain else "fail"),
        Hop("stage", "REST API stage", f"{n.rest_api} / {p.api.stage}", "{proxy+} ANY HTTP_PROXY"),
        Hop("vpc_link", "VPC link", n.vpc_link, link_text),
        Hop("nlb", f"Internal {'ALB' if p.nlb.type == 'application' else 'NLB'}", n.nlb,
            f"{protocol} :{p.listener_port}, {', '.join(azs)}"),
        Hop("target_group", "Target group", n.target_group(p.target_port),
            f"{protocol} :{p.target_port}, {'ip' if p.awsvpc else 'instance'} targets"),
        Hop("security_group", group[0], "ingress", group[1]),
    ]
    host_port = p.service.host_port if p.fixed_host_port else None  # dynamic or an IP: not known before
    targets = [Target(i["az"], i["instance_id"], i["private_ip"] or "", host_port, p.service.container_port,
                      "planned" if i["state"] == "running" else "fail", i["state"])
               for i in world.instances] if p.service.launch_type == "EC2" else []
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
    tg = next((t for t in inv.target_groups if t["TargetGroupName"] == n.target_group(p.target_port)), None)
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
        Hop("listener", "Listener", f"{'HTTP' if p.nlb.type == 'application' else 'TCP'} :{p.listener_port}",
            f"-> {', '.join(forwards)}" if listener else "missing", worst.get("listener", "unknown")),
        Hop("target_group", "Target group", tg["TargetGroupName"] if tg else "missing",
            f"{tg['Protocol']} :{tg['Port']} {tg['TargetType']}" if tg else "", worst.get("target_group", "unknown")),
    ]
    targets = _live_targets(inv, tg)
    if not targets:  # no panel to draw, so the targets hop gets a box of its own
        hops.append(Hop("targets", "Targets", "none registered", "", worst.get("targets", "unknown")))
    hops += [
        Hop("security_group", "Task SG" if p.awsvpc else "Instance SG",
            f"tcp:{p.service.container_port} from the load balancer" if p.awsvpc else
            "tcp:32768-65535 from the ALB's group" if p.dynamic_host_ports else
            f"tcp:{p.service.host_port} from NLB subnets", "", worst.get("security_group", "unknown")),
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


def _live_targets(inv: Inventory, tg: dict | None) -> list[Target]:
    """The target group's targets as the diagram's panel shows them: AZ, id, address, ports and health."""
    targets = []
    descs = inv.health.get(tg["TargetGroupArn"], []) if tg else []
    for d in descs:
        inst = inv.instances.get(d["Target"]["Id"], {})
        task = next((t for t in inv.tasks if t.get("ip") == d["Target"]["Id"]), {})  # an IP target (awsvpc)
        state = d["TargetHealth"]["State"]
        targets.append(Target(inst.get("Placement", {}).get("AvailabilityZone") or task.get("az") or "?",
                              d["Target"]["Id"], inst.get("PrivateIpAddress", d["Target"]["Id"] if task else ""),
                              d["Target"].get("Port"), inv.params.service.container_port,
                              "pass" if state == "healthy" else "fail",
                              state + (f" ({d['TargetHealth']['Reason']})" if d["TargetHealth"].get("Reason")
                                       else "")))
    return targets
