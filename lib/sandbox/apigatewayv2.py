"""API Gateway V2 (VPC link V2) behaviour that moto 5.2 lacks.

API Gateway V2 (VPC link V2)
- VPC links V2 are PENDING for `delays.vpc_link_pending` s, then AVAILABLE; `set_vpc_link_v2_status` injects
  FAILED/INACTIVE (moto: AVAILABLE at once). A link gets one network interface per subnet in its security
  groups, removed on delete (moto: none).
"""

from __future__ import annotations

from typing import Any

from .base import _CFG, LOCK, _ec2, _now, _wrap

# --------------------------------------------------------------------------------------------
# API Gateway V2 VPC links, security group dependencies
# --------------------------------------------------------------------------------------------


def set_vpc_link_v2_status(account_id: str, region: str, link_id: str, status: str, message: str = "") -> None:
    """Force a V2 VPC link's status (e.g. FAILED, INACTIVE) and message; it then stays there."""
    from moto.apigatewayv2.models import apigatewayv2_backends

    with LOCK:
        link = apigatewayv2_backends[account_id][region].get_vpc_link(link_id)
        link._sbx_status = status
        link._sbx_message = message or {"FAILED": "Subnet or security group is not valid",
                                         "INACTIVE": "VPC link is inactive: no integration has used it"}.get(status, "")
        link._sbx_forced = True


def _install_apigatewayv2() -> None:
    from moto.apigatewayv2 import models as m

    def create_vpc_link(orig: Any) -> Any:
        def f(self: Any, name: str, sg_ids: list[str], subnet_ids: list[str], tags: dict[str, str]) -> Any:
            with LOCK:
                link = orig(self, name, sg_ids, subnet_ids, tags)
                link._sbx_created = _now()
                link._sbx_status = "PENDING"
                link._sbx_message = "VPC link is provisioning ENIs"
                ec2 = _ec2(self.account_id, self.region_name)
                link._sbx_enis = []
                for subnet_id in subnet_ids or []:
                    eni = ec2.create_network_interface(subnet=ec2.get_subnet(subnet_id), private_ip_address=None,
                                                       group_ids=list(sg_ids or []),
                                                       description=f"VPC Endpoint Interface vpclink {link.id}")
                    eni.status = "in-use"
                    link._sbx_enis.append(eni.id)
                return link

        return f

    def delete_vpc_link(orig: Any) -> Any:
        def f(self: Any, vpc_link_id: str) -> None:
            with LOCK:
                link = self.vpc_links.get(vpc_link_id)
                orig(self, vpc_link_id)
                ec2 = _ec2(self.account_id, self.region_name)
                for eni_id in getattr(link, "_sbx_enis", []) if link else []:
                    try:
                        ec2.delete_network_interface(eni_id)
                    except Exception:  # noqa: BLE001 - already gone
                        pass

        return f

    def to_json(orig: Any) -> Any:
        def f(self: Any) -> dict[str, Any]:
            with LOCK:
                d = orig(self)
                status = getattr(self, "_sbx_status", None)
                if status == "PENDING" and _now() - self._sbx_created >= _CFG.vpc_link_pending:
                    self._sbx_status, self._sbx_message = "AVAILABLE", "VPC link is ready to route traffic"
                if status is not None:
                    d["vpcLinkStatus"] = self._sbx_status
                    d["vpcLinkStatusMessage"] = self._sbx_message
                return d

        return f

    _wrap(m.ApiGatewayV2Backend, "create_vpc_link", "apigwv2.create_vpc_link", create_vpc_link)
    _wrap(m.ApiGatewayV2Backend, "delete_vpc_link", "apigwv2.delete_vpc_link", delete_vpc_link)
    _wrap(m.VpcLink, "to_json", "apigwv2.link_to_json", to_json)
