"""EC2 behaviour that moto 5.2 lacks.

EC2
- Deleting a security group that a network interface uses (a deleted load balancer's too, until AWS releases
  it: elbv2_groups.release_lingering), or that another group's rule references, fails with DependencyViolation
  (moto: deletes it).
"""

from __future__ import annotations

from typing import Any

from .base import LOCK, _wrap


def _install_ec2() -> None:
    from moto.ec2.models.instances import InstanceBackend

    def run_instances(orig: Any) -> Any:
        # AWS puts an instance launched in a VPC subnet without security groups in that VPC's default
        # security group; moto leaves it in none, which no AWS account can show.
        def f(self: Any, image_id: str, count: int, user_data: Any, security_group_names: list[str],
              **kwargs: Any) -> Any:
            if (not security_group_names and not kwargs.get("security_group_ids")
                    and not kwargs.get("launch_template") and kwargs.get("subnet_id")):
                subnet = self.get_subnet(kwargs["subnet_id"])
                default = self.get_default_security_group(subnet.vpc_id)
                if default is not None:
                    kwargs["security_group_ids"] = [default.id]
            return orig(self, image_id, count, user_data, security_group_names, **kwargs)

        return f

    _wrap(InstanceBackend, "run_instances", "ec2.run_instances", run_instances)

    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ec2.utils import generate_dns_from_ip

    def eni_init(orig: Any) -> Any:
        # Every interface has a private DNS name in AWS; moto gives one only in VPCs with DNS hostnames on, and
        # its ECS then fails to start awsvpc tasks anywhere else.
        def f(self: Any, *args: Any, **kwargs: Any) -> None:
            orig(self, *args, **kwargs)
            if not getattr(self, "private_dns_name", None) and self.private_ip_address:
                self.private_dns_name = generate_dns_from_ip(self.private_ip_address)

        return f

    _wrap(NetworkInterface, "__init__", "ec2.eni_init", eni_init)


def _install_security_groups() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.security_groups import SecurityGroupBackend

    def delete_security_group(orig: Any) -> Any:
        def f(self: Any, name: str | None = None, group_id: str | None = None) -> None:
            with LOCK:
                from .elbv2_groups import release_lingering

                release_lingering(self)
                if group_id:
                    users = [e.id for e in self.enis.values() if group_id in {g.id for g in e._group_set}]
                    if users:
                        raise EC2ClientError("DependencyViolation",
                                             f"resource {group_id} has a dependent object ({users[0]})")
                    for groups in self.groups.values():
                        for group in groups.values():
                            if group.id == group_id:
                                continue
                            for rule in group.ingress_rules:
                                if (getattr(rule, "source_group", None) or {}).get("GroupId") == group_id:
                                    raise EC2ClientError("DependencyViolation",
                                                         f"resource {group_id} has a dependent object "
                                                         f"(a rule of {group.id})")
                return orig(self, name=name, group_id=group_id)

        return f

    _wrap(SecurityGroupBackend, "delete_security_group", "ec2.delete_security_group", delete_security_group)
