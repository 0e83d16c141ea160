"""The path parameters (vpc_link.version, load_balancer.type, service.network_mode/launch_type): valid
combinations load with the derived values every step uses; incompatible ones are refused before any AWS
call, naming the field and the fix (exit 2, no run record)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from vpclink_runbooks import cli
from vpclink_runbooks.errors import ParamsError
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import parse_params

from .test_params import LOCAL, assert_refused, offline, write_bad  # noqa: F401 - offline is a fixture


def variant(**sections) -> Callable[[dict], dict]:
    """params/local.yaml with whole sections merged in (service keys merged into service; None deletes)."""
    def apply(data: dict) -> dict:
        for section, values in sections.items():
            if isinstance(values, dict) and isinstance(data.get(section), dict):
                for key, value in values.items():
                    if value is None:
                        data[section].pop(key, None)
                    else:
                        data[section][key] = value
            elif values is None:
                data.pop(section, None)
            else:
                data[section] = values
        return data

    return apply


def load(mutation: Callable[[dict], dict]):
    return parse_params(mutation(copy.deepcopy(LOCAL)))


ALB = dict(vpc_link={"version": 2}, nlb=None, load_balancer={"type": "application"},
           service={"host_port": None, "health_check_path": "/health"})
AWSVPC = dict(vpc_link={"version": 2}, service={"host_port": None, "network_mode": "awsvpc"})
FARGATE = dict(vpc_link={"version": 2}, service={"host_port": None, "network_mode": "awsvpc",
                                                 "launch_type": "FARGATE", "cpu": 512, "memory": 2048})


def test_default_stays_v1_nlb_fixed_port():
    p = parse_params(copy.deepcopy(LOCAL))
    assert (p.vpc_link.version, p.nlb.type, p.service.network_mode, p.service.launch_type) == (1, "network",
                                                                                               "bridge", "EC2")
    assert p.fixed_host_port and p.target_port == p.service.host_port == 10000
    assert (p.minimum_healthy_percent, p.maximum_percent) == (50, 100)
    names = Names(p)
    assert (names.nlb, names.target_group(10000)) == ("local-orders-nlb", "local-orders-10000")


def test_alb_dynamic_ports_derived_values():
    p = load(variant(**ALB))
    assert p.dynamic_host_ports and not p.fixed_host_port and not p.awsvpc
    assert p.target_port == p.listener_port == 8080
    # no fixed port to free: ECS's own defaults (100-200%) apply
    assert (p.minimum_healthy_percent, p.maximum_percent) == (100, 200)
    names = Names(p)
    assert (names.nlb, names.target_group(p.target_port)) == ("local-orders-alb", "local-orders-dyn8080")


def test_awsvpc_and_fargate_derived_values():
    p = load(variant(**AWSVPC))
    assert p.awsvpc and p.target_port == 8080 and Names(p).target_group(8080) == "local-orders-ip8080"
    f = load(variant(**FARGATE))
    assert f.service.launch_type == "FARGATE" and f.awsvpc


def test_nlb_is_the_old_name_of_load_balancer():
    old = load(variant(nlb={"type": "network", "listener_port": 443}))
    new = load(variant(nlb=None, load_balancer={"type": "network", "listener_port": 443}))
    assert old.nlb == new.nlb and old.sha256() == new.sha256()


BAD = [
    ("v1-link-with-alb", variant(nlb=None, load_balancer={"type": "application"}, service={"host_port": None}),
     "load_balancer.type", "vpc_link.version: 2"),
    ("fargate-with-bridge", variant(vpc_link={"version": 2}, service={"launch_type": "FARGATE", "cpu": 256,
                                                                      "memory": 512}),
     "service.network_mode", "network_mode: awsvpc"),
    ("fargate-cpu-size", variant(**{**FARGATE, "service": {**FARGATE["service"], "cpu": 300}}),
     "service.cpu", "not a Fargate task size"),
    ("fargate-memory-size", variant(**{**FARGATE, "service": {**FARGATE["service"], "memory": 512}}),
     "service.memory", "does not go with cpu 512"),
    ("fixed-port-path-without-host-port", variant(service={"host_port": None}),
     "service.host_port", "required for bridge mode behind a network load balancer"),
    ("host-port-with-alb", variant(**{**ALB, "service": {"host_port": 10000}}),
     "service.host_port", "remove service.host_port"),
    ("host-port-differs-in-awsvpc", variant(**{**AWSVPC, "service": {"network_mode": "awsvpc",
                                                                     "host_port": 10000}}),
     "service.host_port", "remove service.host_port"),
    ("extra-ports-off-the-fixed-path", variant(**{**AWSVPC, "service": {
        "network_mode": "awsvpc", "host_port": None,
        "extra_ports": [{"container_port": 7777, "host_port": 10001}]}}),
     "service.extra_ports", "fixed-port path only"),
    ("task-subnets-in-bridge", variant(service={"subnets": ["subnet-0a1b2c3d"]}),
     "service.subnets", "network_mode: awsvpc"),
    ("v1-link-subnets", variant(vpc_link={"version": 1, "subnets": ["subnet-0a1b2c3d"]}),
     "vpc_link.subnets", "vpc_link.version: 2"),
    ("both-nlb-and-load-balancer", variant(load_balancer={"type": "network"}),
     "load_balancer", "keep one"),
    ("unknown-network-mode", variant(service={"network_mode": "host"}), "service.network_mode", "awsvpc"),
    ("vpc-link-version-3", variant(vpc_link={"version": 3}), "vpc_link.version", "2"),
    ("unknown-key-under-load-balancer", variant(nlb=None, load_balancer={"typ": "network"}),
     "load_balancer.typ", "did you mean 'type'"),
]


@pytest.mark.parametrize(("mutation", "field", "fix"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_incompatible_paths_refused_before_any_aws_call(mutation, field, fix, offline, capsys):  # noqa: F811
    path = write_bad(offline, mutation)
    code = cli.main(["plan", str(path)])
    _out, err = capsys.readouterr()
    assert_refused(code, err, field, fix, offline / "runs")


def test_refusal_is_a_params_error_naming_the_field():
    with pytest.raises(ParamsError) as raised:
        load(variant(nlb=None, load_balancer={"type": "application"}, service={"host_port": None}))
    assert "load_balancer.type" in str(raised.value)
