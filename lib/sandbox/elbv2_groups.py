"""ELBv2 security-group behaviour that moto 5.2 lacks (an NLB's own groups, since 2023), and the release of a
deleted NLB's network interfaces; see elbv2's docstring for the list."""

from __future__ import annotations

from typing import Any

from .base import LOCK, _now, _wrap


def release_lingering(ec2: Any) -> None:
    """Delete the interfaces of deleted load balancers whose release time has come (under LOCK)."""
    for eni_id, eni in list(ec2.enis.items()):
        due = getattr(eni, "_sbx_release_at", None)
        if due is not None and _now() >= due:
            try:
                ec2.delete_network_interface(eni_id)
            except Exception:  # noqa: BLE001 - already gone
                pass


def _set_security_groups(orig: Any) -> Any:
    from moto.elbv2.exceptions import ELBClientError

    def f(self: Any, arn: str, sec_groups: list[str]) -> None:
        with LOCK:
            lb = self.load_balancers.get(arn)
            if lb is not None and lb.type == "network" and not lb.security_groups:
                raise ELBClientError(
                    "InvalidConfigurationRequest",
                    "You can't associate security groups with a Network Load Balancer that was created "
                    "without security groups",
                )
            orig(self, arn, sec_groups)
            if lb is not None and lb.type == "network":
                for eni_id in getattr(lb, "_sbx_enis", []):
                    eni = self.ec2_backend.enis.get(eni_id)
                    if eni is not None:
                        eni._group_set = [self.ec2_backend.get_security_group_from_id(g) for g in sec_groups]

    return f


def _set_security_groups_response(orig: Any) -> Any:
    # The request's EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic, which moto ignores.
    from moto.core.responses import ActionResult

    def f(self: Any) -> Any:
        result = orig(self)
        enforce = self._get_param("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic")
        lb = self.elbv2_backend.load_balancers.get(self._get_param("LoadBalancerArn"))
        if lb is None or lb.type != "network":
            return result
        if enforce in ("on", "off"):
            lb.enforce_security_group_inbound_rules_on_private_link_traffic = enforce
        return ActionResult({"SecurityGroupIds": list(lb.security_groups),
                             "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic":
                                 getattr(lb, "enforce_security_group_inbound_rules_on_private_link_traffic", "on")})

    return f


def install(backend: Any, response: Any) -> None:
    _wrap(backend, "set_security_groups", "elbv2.set_security_groups", _set_security_groups)
    _wrap(response, "set_security_groups", "elbv2.set_security_groups_response", _set_security_groups_response)
