"""The run inventory (aws/run_inventory): one command's sessions share their reads through the run folder, and a
mutation, a wait's poll or the final verify's freshness make the next read go to AWS (against the sandbox)."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.aws.run_inventory import FILE

from .lifecycle import notebook


def sent(aws: aws_mod.Aws) -> list[str]:
    return [c["operation"] for c in aws.recorder.calls]


def test_a_later_notebook_is_answered_from_what_an_earlier_one_read(sandbox, tmp_path):
    first, second = notebook(sandbox, tmp_path, "00_inspect"), notebook(sandbox, tmp_path, "10_nlb")
    vpcs = first.ec2.describe_vpcs()["Vpcs"]
    assert second.ec2.describe_vpcs()["Vpcs"] == vpcs
    assert sent(first) == ["DescribeVpcs"] and sent(second) == []
    # other parameters are another read
    second.ec2.describe_vpcs(VpcIds=[vpcs[0]["VpcId"]])
    assert sent(second) == ["DescribeVpcs"]
    rows = [json.loads(line) for line in (tmp_path / FILE).read_text().splitlines()]
    assert [r["sent"] for r in rows if "sent" in r] == ["00_inspect", "10_nlb"]


def test_an_absent_resource_is_answered_with_the_same_error(sandbox, tmp_path):
    first, second = notebook(sandbox, tmp_path, "a"), notebook(sandbox, tmp_path, "b")
    codes = []
    for aws in (first, second):
        with pytest.raises(ClientError) as caught:
            aws.elbv2.describe_load_balancers(Names=["nobody-has-this-name"])
        codes.append(caught.value.response["Error"]["Code"])
    assert codes == ["LoadBalancerNotFound"] * 2
    assert sent(second) == []


def test_a_mutation_in_another_notebook_makes_the_next_read_go_to_aws(sandbox, tmp_path):
    reader, writer = notebook(sandbox, tmp_path, "reader"), notebook(sandbox, tmp_path, "writer")
    vpc_id = reader.ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    before = reader.elbv2.describe_target_groups()["TargetGroups"]
    name = f"inv-{int(time.time() * 1000) % 10**8}"
    created = writer.elbv2.create_target_group(Name=name, Protocol="TCP", Port=18080, VpcId=vpc_id,
                                               TargetType="instance")["TargetGroups"][0]
    try:
        # what the create answered is what a later read by name answers, without a call
        assert reader.elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"] == \
            created["TargetGroupArn"]
        listed = reader.elbv2.describe_target_groups()["TargetGroups"]
        assert {g["TargetGroupArn"] for g in listed} == {g["TargetGroupArn"] for g in before} | {
            created["TargetGroupArn"]}
        assert sent(reader) == ["DescribeVpcs", "DescribeTargetGroups"]
        # a mutation CHANGES does not describe forgets everything of its service that names what it named
        writer.elbv2.add_tags(ResourceArns=[created["TargetGroupArn"]], Tags=[{"Key": "k", "Value": "v"}])
        reader.elbv2.describe_target_groups(Names=[name])
        reader.elbv2.describe_target_groups()
        assert sent(reader)[2:] == ["DescribeTargetGroups", "DescribeTargetGroups"]
        reader.ec2.describe_vpcs()  # another service's answer stays
        assert len(sent(reader)) == 4
    finally:
        writer.elbv2.delete_target_group(TargetGroupArn=created["TargetGroupArn"])
    with pytest.raises(ClientError):
        reader.elbv2.describe_target_groups(Names=[name])


def test_polls_are_sent_and_their_answers_update_what_is_kept(sandbox, tmp_path):
    aws = notebook(sandbox, tmp_path, "30_ecs_service")
    vpc_id = aws.ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    name = f"poll-{int(time.time() * 1000) % 10**8}"
    tg = aws.elbv2.create_target_group(Name=name, Protocol="TCP", Port=18081, VpcId=vpc_id)["TargetGroups"][0]
    try:
        aws.elbv2.describe_target_groups()  # a list read; the poll below reads the group by ARN
        with aws_mod.polling("target_group_poll"):
            for _ in range(2):
                aws.elbv2.describe_target_groups(TargetGroupArns=[tg["TargetGroupArn"]])
        polls = [c for c in aws.recorder.calls if c.get("wait")]
        assert len(polls) == 2  # a wait's polls are never answered from the inventory
        rows = [json.loads(line) for line in (tmp_path / FILE).read_text().splitlines()]
        assert any("update" in r for r in rows) and [r["wait"] for r in rows if "wait" in r] == [
            "target_group_poll"] * 2
    finally:
        aws.elbv2.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


@pytest.mark.parametrize("lockstep", [False, True])
def test_two_notebooks_waiting_for_one_resource_poll_aws_about_once_a_period(sandbox, tmp_path, lockstep):
    """10_nlb's wait and 20_vpc_link's (before it creates the link) poll the same NLB: a poll another notebook sent
    under half a second ago answers the other's; polls further apart, or a waiter's own, are sent."""
    import threading

    from vpclink_runbooks.aws.run_inventory import SHARED_POLL_SECONDS

    nlb, link = notebook(sandbox, tmp_path, "10_nlb"), notebook(sandbox, tmp_path, "20_vpc_link")
    vpc_id = nlb.ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    name = f"shared-{int(time.time() * 1000) % 10**8}"
    tg = nlb.elbv2.create_target_group(Name=name, Protocol="TCP", Port=18082, VpcId=vpc_id)["TargetGroups"][0]
    arn = tg["TargetGroupArn"]
    try:
        def poll(aws, offset: float, polls: int = 4) -> None:
            time.sleep(offset)
            with aws_mod.polling("shared_poll"):
                for _ in range(polls):
                    aws.elbv2.describe_target_groups(TargetGroupArns=[arn])
                    time.sleep(1.0)

        waiters = [threading.Thread(target=poll, args=(nlb, 0.0)), threading.Thread(target=poll, args=(link, 0.2))]
        if lockstep:  # the second starts while the first's poll is on its way: it waits for that answer
            waiters[1] = threading.Thread(target=poll, args=(link, 0.0))
        for w in waiters:
            w.start()
        for w in waiters:
            w.join()
        polls = [len([c for c in aws.recorder.calls if c.get("wait")]) for aws in (nlb, link)]
        assert sum(polls) <= 5, polls  # one notebook's polls answer the other's (8 if each sent its own; a
        # loaded machine may delay a thread past the half second once)
        # a poll older than SHARED_POLL_SECONDS is not shared
        with aws_mod.polling("shared_poll"):
            nlb.elbv2.describe_target_groups(TargetGroupArns=[arn])
            time.sleep(SHARED_POLL_SECONDS + 0.1)
            link.elbv2.describe_target_groups(TargetGroupArns=[arn])
        assert len([c for c in link.recorder.calls if c.get("wait")]) == polls[1] + 1
    finally:
        nlb.elbv2.delete_target_group(TargetGroupArn=arn)


def test_the_final_verify_reads_what_time_changes_unless_it_is_recent(sandbox, tmp_path):
    aws = notebook(sandbox, tmp_path, "50_verify")
    aws.ec2.describe_instances()
    aws.ec2.describe_vpcs()
    with aws.inventory.fresh(seconds=0.0):  # older than 0 s: DescribeInstances (FRESH) goes out, VPCs do not
        time.sleep(0.01)
        aws.ec2.describe_instances()
        aws.ec2.describe_instances()  # read once within the block
        aws.ec2.describe_vpcs()
    assert sent(aws) == ["DescribeInstances", "DescribeVpcs", "DescribeInstances"]
    with aws.inventory.fresh(seconds=60.0):  # a read seconds ago is recent enough
        aws.ec2.describe_instances()
    assert len(sent(aws)) == 3


def test_without_a_run_folder_a_notebook_reads_everything_itself(sandbox, monkeypatch):
    monkeypatch.delenv(aws_mod.RUN_DIR_ENV, raising=False)
    aws = aws_mod.Aws(sandbox.session(), aws_mod.CallRecorder())
    aws.ec2.describe_vpcs()
    aws.ec2.describe_vpcs()
    assert sent(aws) == ["DescribeVpcs", "DescribeVpcs"] and aws.inventory is None


def test_a_read_by_name_is_answered_from_a_complete_list_read_earlier(sandbox, tmp_path):
    aws = notebook(sandbox, tmp_path, "10_nlb")
    vpc_id = aws.ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    name = f"list-{int(time.time() * 1000) % 10**8}"
    created = sandbox.session().client("elbv2").create_target_group(  # made outside the run: the list shows it
        Name=name, Protocol="TCP", Port=18082, VpcId=vpc_id)["TargetGroups"][0]
    try:
        listed = aws.elbv2.describe_target_groups()["TargetGroups"]
        assert created["TargetGroupArn"] in {g["TargetGroupArn"] for g in listed}
        found = aws.elbv2.describe_target_groups(Names=[name])["TargetGroups"]
        assert [g["TargetGroupArn"] for g in found] == [created["TargetGroupArn"]]
        with pytest.raises(ClientError) as caught:  # a name the complete list does not have: AWS's own error
            aws.elbv2.describe_target_groups(Names=[name + "-absent"])
        assert caught.value.response["Error"]["Code"] == "TargetGroupNotFound"
        assert sent(aws) == ["DescribeVpcs", "DescribeTargetGroups"]
    finally:
        sandbox.session().client("elbv2").delete_target_group(TargetGroupArn=created["TargetGroupArn"])
