"""00_inspect's path recommendation agrees with the params' path or says plainly why another suits better."""

from __future__ import annotations

from tests.conftest import write_params
from vpclink_runbooks.context import begin
from vpclink_runbooks.steps import inspect as inspect_vpc


def _recommend(tmp_path, **changes):
    path = write_params(tmp_path, sandbox=False, **changes)
    ctx = begin("00_inspect", {"params_file": str(path), "mode": "plan"})
    table = inspect_vpc.recommend_path(ctx, inspect_vpc.discover(ctx))
    return table.iloc[0], table[table["current"]]


def test_default_params_recommendation_names_the_params_path_or_why_not(sandbox, tmp_path):
    first, current = _recommend(tmp_path)
    assert len(current) == 1 and current.iloc[0]["path"].endswith(inspect_vpc.PATHS["v1-nlb-fixed"])
    if first["current"]:
        assert first["reasons"].startswith("this is the path your params ask for"), first["reasons"]
    else:
        assert first["reasons"].startswith(f"your params ask for {inspect_vpc.PATHS['v1-nlb-fixed']}"), \
            first["reasons"]
        assert "suits the cluster better" in first["reasons"] and "because: " in first["reasons"]


def test_params_asking_for_another_path_agree_or_explain(sandbox, tmp_path):
    for changes, key in (({"vpc_link__version": 2, "nlb__type": "application", "service__host_port": None,
                           "service__health_check_path": "/health"}, "v2-alb-dynamic"),
                         ({"vpc_link__version": 2, "service__network_mode": "awsvpc", "service__host_port": None},
                          "v2-nlb-awsvpc")):
        first, current = _recommend(tmp_path, **changes)
        assert current.iloc[0]["path"].endswith(inspect_vpc.PATHS[key])
        if first["current"]:
            assert first["reasons"].startswith("this is the path your params ask for"), first["reasons"]
        else:
            assert first["reasons"].startswith(f"your params ask for {inspect_vpc.PATHS[key]}"), first["reasons"]

