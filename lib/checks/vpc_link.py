"""Checks of the VPC link hop."""

from __future__ import annotations

from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check
from vpclink_runbooks.steps.inspect import VPC_LINK_QUOTA

# -- VPC link --

@check(id="vpc_link.exists", hop="vpc_link", severity="error", repaired_by="vpc_link",
       remedy="create the VPC link to our load balancer")
@check(id="vpc_link.quota", hop="vpc_link", severity="warn", repaired_by=None,
       remedy="share an existing load balancer and link, delete an unused link, or request a quota increase")
@check(id="vpc_link.status", hop="vpc_link", severity="error", repaired_by="vpc_link",
       remedy="delete and recreate a link that is not AVAILABLE")
@check(id="vpc_link.target", hop="vpc_link", severity="error", repaired_by="vpc_link",
       remedy="recreate the VPC link targeting our load balancer")
@check(id="vpc_link.security_group", hop="vpc_link", severity="error", repaired_by="vpc_link",
       remedy="recreate the V2 link in the runbook's security group")
def vpc_link_available(inv: Inventory) -> list[Result]:
    """Our V1 VPC link is AVAILABLE and targets our NLB; the account is not at the link quota."""
    link = inv.link
    count = f"{inv.vpc_link_count} of {VPC_LINK_QUOTA} VPC links used in this region"
    if link is None:
        out = [Result("vpc_link.exists", "vpc_link", "fail", "no VPC link tagged for this environment",
                      "create the VPC link to our NLB (repair does)")]
        if inv.vpc_link_count >= VPC_LINK_QUOTA:
            out.append(Result("vpc_link.quota", "vpc_link", "fail", f"{count}: a new link cannot be created",
                              "share an existing NLB and link, delete an unused link, or request a quota increase"))
        return out
    if link.get("version") == 2:
        return _vpc_link_v2(inv, link)
    out = []
    if link.get("status") != "AVAILABLE":
        out.append(Result("vpc_link.status", "vpc_link", "fail",
                          f"VPC link {link['id']} is {link.get('status')}: {link.get('statusMessage', '')}",
                          "a link that is not AVAILABLE cannot carry requests: delete and recreate it once the NLB "
                          "is active (repair does)"))
    elif not inv.lb or link.get("targetArns") != [inv.lb["LoadBalancerArn"]]:
        out.append(Result("vpc_link.target", "vpc_link", "fail",
                          f"VPC link {link['id']} targets {link.get('targetArns')}; our NLB is "
                          f"{(inv.lb or {}).get('LoadBalancerArn', 'missing')}",
                          "recreate the VPC link targeting our NLB (repair does)"))
    else:
        out.append(Result("vpc_link.status", "vpc_link", "pass", f"{link['id']} AVAILABLE -> {inv.names.nlb}"))
    near = inv.vpc_link_count >= VPC_LINK_QUOTA - 2
    out.append(Result("vpc_link.quota", "vpc_link", "warn" if near else "pass", count,
                      "share NLBs and links or request a quota increase before the next service" if near else ""))
    return out


def _vpc_link_v2(inv: Inventory, link: dict) -> list[Result]:
    status = link.get("status")
    if status != "AVAILABLE":
        why = {"INACTIVE": "AWS deactivates a V2 link no integration used for 60 days",
               "FAILED": "its subnets or security group could not be used",
               "PENDING": "still provisioning its network interfaces"}.get(status, "")
        return [Result("vpc_link.status", "vpc_link", "fail" if status != "PENDING" else "warn",
                       f"VPC link V2 {link['id']} is {status}: {link.get('statusMessage', '')} ({why})",
                       "an INACTIVE or FAILED V2 link cannot carry requests: delete and recreate it (repair does)"
                       if status != "PENDING" else "verify again in a minute")]
    group = inv.groups.get(inv.names.link_security_group)
    out = [Result("vpc_link.status", "vpc_link", "pass", f"V2 {link['id']} AVAILABLE in {link.get('subnetIds')}")]
    if group is None or link.get("securityGroupIds") != [group["GroupId"]]:
        out.append(Result("vpc_link.security_group", "vpc_link", "fail",
                          f"VPC link V2 {link['id']} is in {link.get('securityGroupIds')}; the runbook's group "
                          f"{inv.names.link_security_group} is {(group or {}).get('GroupId', 'missing')}",
                          "recreate the link in the runbook's security group (repair does)"))
    else:
        out.append(Result("vpc_link.security_group", "vpc_link", "pass",
                          f"interfaces in {inv.names.link_security_group} ({group['GroupId']})"))
    return out

