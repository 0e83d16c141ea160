"""Names and tags of everything the runbook creates, derived from the parameters in one place."""

from __future__ import annotations

from dataclasses import dataclass

from .params import Params

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
        return f"{self.base}-nlb"

    def target_group(self, host_port: int) -> str:
        # The port is part of the name: a target group's port cannot change, so a new host port
        # means a new target group, and the name says which port each one serves.
        return f"{self.base}-{host_port}"

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

    def rule_description(self, host_port: int) -> str:
        return f"{MANAGED_BY} {self.base} host port {host_port} from NLB subnet"

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
