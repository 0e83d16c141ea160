"""Names and tags of everything the runbook creates, derived from the parameters in one place."""

from __future__ import annotations

from dataclasses import dataclass

from vpclink_runbooks.params import Params, target_group_suffix

MANAGED_BY = "vpclink-runbooks"
TAG_ENV = "runbook:environment"
TAG_SERVICE = "runbook:service"
TAG_MANAGED = "runbook:managed-by"


@dataclass(frozen=True)
class Names:
    params: Params

    @property
    def base(self) -> str:
        return f"{self.params.environment}-{self.params.service.name}"

    @property
    def nlb(self) -> str:
        """The internal load balancer's name (kept as `nlb` for the original path; "-alb" for an ALB)."""
        return f"{self.base}-{'alb' if self.params.nlb.type == 'application' else 'nlb'}"

    @property
    def load_balancer(self) -> str:
        return self.nlb

    @property
    def load_balancer_names(self) -> list[str]:
        """Every name our load balancer may have had (the type can change between applies)."""
        return [f"{self.base}-nlb", f"{self.base}-alb"]

    def target_group(self, host_port: int) -> str:
        # The port is part of the name: a target group's port cannot change, so a new host port
        # means a new target group, and the name says which port each one serves. IP targets
        # (awsvpc) and dynamic host ports get their own prefix: a target type cannot change either.
        return f"{self.base}{target_group_suffix(self.params, host_port)}"

    @property
    def link_security_group(self) -> str:
        """The V2 VPC link's own security group (its network interfaces send from it)."""
        return f"{self.base}-vpclink"

    @property
    def alb_security_group(self) -> str:
        return f"{self.base}-alb"

    @property
    def nlb_security_group(self) -> str:
        """The NLB's own security group (attached when the NLB is created; instances admit traffic from it)."""
        return f"{self.base}-nlb"

    @property
    def task_security_group(self) -> str:
        """awsvpc tasks' security group (each task's network interface is in it)."""
        return f"{self.base}-tasks"

    @property
    def vpc_link(self) -> str:
        return f"{self.base}-link"

    @property
    def rest_api(self) -> str:
        return self.base

    @property
    def task_family(self) -> str:
        return self.base

    @property
    def ecs_service(self) -> str:
        return self.params.service.name

    @property
    def container(self) -> str:
        return self.params.service.name

    def rule_description(self, host_port: int, source: str = "NLB subnet") -> str:
        return f"{MANAGED_BY} {self.base} host port {host_port} from {source}"

    @property
    def tags(self) -> dict[str, str]:
        return {
            TAG_ENV: self.params.environment,
            TAG_SERVICE: self.params.service.name,
            TAG_MANAGED: MANAGED_BY,
        }

    def tag_list(self, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
        return [{key: k, value: v} for k, v in self.tags.items()]

    def owns(self, tags: dict[str, str] | list[dict] | None) -> bool:
        """True when the tags say this environment's runbook created the resource."""
        if isinstance(tags, list):
            tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
        tags = tags or {}
        return all(tags.get(k) == v for k, v in self.tags.items())
