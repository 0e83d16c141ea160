"""Where the host-port rule goes when cluster instances do or do not share a security group."""

from __future__ import annotations

import pytest

from vpclink_runbooks.errors import PreflightRefused
from vpclink_runbooks.steps.ecs_service import instance_security_groups
from vpclink_runbooks.steps.inspect import World


def world(*groups: list[str], state: str = "running") -> World:
    instances = [{"instance_id": f"i-{n}", "state": state, "security_groups": g} for n, g in enumerate(groups)]
    return World(vpc={}, subnets=[], instances=instances)


def test_a_shared_group_takes_the_rule_once():
    assert instance_security_groups(world(["sg-b", "sg-shared"], ["sg-shared"], ["sg-a", "sg-shared"])) == [
        "sg-shared"]


def test_without_a_shared_group_each_instance_primary_group_takes_it():
    assert instance_security_groups(world(["sg-a", "sg-x"], ["sg-b"], ["sg-a"])) == ["sg-a", "sg-b"]


def test_an_instance_without_any_group_is_refused():
    with pytest.raises(PreflightRefused, match="no security group"):
        instance_security_groups(world(["sg-a"], []))
