"""A realistic pre-existing AWS world for the sandbox, seeded with plain boto3 over HTTP.

A VPC with private subnets (one per AZ, no internet route) and one public subnet (route to an
internet gateway, no cluster instance), a cluster security group, running EC2 instances
registered as ECS container instances, an ACM certificate, and a REGIONAL API Gateway custom
domain that already serves another REST API at its own base path.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3


@dataclass
class WorldSpec:
    region: str = "eu-west-2"
    vpc_id: str = "vpc-0a1b2c3d4e5f60718"
    vpc_cidr: str = "10.42.0.0/16"
    cluster: str = "local-ecs"
    az_count: int = 2
    instances_per_az: int = 1
    cluster_security_group_name: str = "local-ecs-instances"
    domain_name: str = "api.example.com"
    other_api_name: str = "users-api"
    other_base_path: str = "users"
    other_stage: str = "prod"
    # instance index -> host ports already taken by another (non-service) task on that instance
    used_host_ports: dict[int, list[int]] = field(default_factory=dict)
    # what the service's tasks need to start (ECS resolves them at task start): SSM parameters (name -> value),
    # Secrets Manager secrets (name -> value), ECR images of this account ("repo:tag") and the execution role
    ssm_parameters: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    ecr_images: list[str] = field(default_factory=list)
    execution_role: str | None = "ecsTaskExecutionRole"


ECS_TASKS_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


@contextlib.contextmanager
def _fixed_vpc_id(vpc_id: str) -> Iterator[None]:
    """moto has no custom VPC ids; when the server runs in this process, pin the next one."""
    try:
        from moto.ec2.models import vpcs
    except ImportError:  # pragma: no cover - remote sandbox
        yield
        return
    orig = vpcs.random_vpc_id
    vpcs.random_vpc_id = lambda: vpc_id
    try:
        yield
    finally:
        vpcs.random_vpc_id = orig


def _self_signed(domain: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
    )


def _tags(name: str, **extra: str) -> list[dict[str, Any]]:
    return [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in extra.items()]


def seed_world(session: boto3.Session, spec: WorldSpec) -> dict:
    """Create the world described by `spec` through `session` (its clients must reach the sandbox)."""
    ec2 = session.client("ec2", region_name=spec.region)
    ecs = session.client("ecs", region_name=spec.region)
    acm = session.client("acm", region_name=spec.region)
    apigw = session.client("apigateway", region_name=spec.region)

    # moto creates the region's default VPC on first use; let that happen before the id is pinned,
    # or the default VPC takes our id and its subnets end up in our VPC.
    ec2.describe_vpcs()
    with _fixed_vpc_id(spec.vpc_id):
        vpc_id = ec2.create_vpc(CidrBlock=spec.vpc_cidr)["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=_tags(f"{spec.cluster}-vpc"))
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})

    zones = sorted(
        z["ZoneName"]
        for z in ec2.describe_availability_zones()["AvailabilityZones"]
        if z.get("ZoneType", "availability-zone") == "availability-zone"
    )
    if spec.az_count > len(zones):
        raise ValueError(f"{spec.region} has only {len(zones)} AZs, spec asks for {spec.az_count}")
    azs = zones[: spec.az_count]
    net = ipaddress.ip_network(spec.vpc_cidr)
    blocks = list(net.subnets(new_prefix=min(net.prefixlen + 4, 28)))

    subnet_ids = []
    for i, az in enumerate(azs):
        sid = ec2.create_subnet(VpcId=vpc_id, CidrBlock=str(blocks[i]), AvailabilityZone=az)["Subnet"]["SubnetId"]
        ec2.create_tags(Resources=[sid], Tags=_tags(f"{spec.cluster}-private-{az}", tier="private"))
        rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
        ec2.create_tags(Resources=[rt], Tags=_tags(f"{spec.cluster}-private-{az}"))
        ec2.associate_route_table(RouteTableId=rt, SubnetId=sid)
        subnet_ids.append(sid)

    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    pub = ec2.create_subnet(VpcId=vpc_id, CidrBlock=str(blocks[len(blocks) // 2]), AvailabilityZone=azs[0])
    public_subnet_ids = [pub["Subnet"]["SubnetId"]]
    ec2.create_tags(Resources=public_subnet_ids, Tags=_tags(f"{spec.cluster}-public-{azs[0]}", tier="public"))
    prt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_tags(Resources=[prt], Tags=_tags(f"{spec.cluster}-public"))
    ec2.create_route(RouteTableId=prt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=prt, SubnetId=public_subnet_ids[0])

    sg = ec2.create_security_group(
        GroupName=spec.cluster_security_group_name,
        Description=f"ECS container instances of {spec.cluster}",
        VpcId=vpc_id,
    )["GroupId"]
    ec2.create_tags(Resources=[sg], Tags=_tags(spec.cluster_security_group_name))

    image_id = "ami-12c6146b"  # an Amazon Linux AMI moto knows; describe_images is slow in moto
    ecs.create_cluster(clusterName=spec.cluster)
    instance_ids: list[str] = []
    ci_arns: list[str] = []
    for i, az in enumerate(azs):
        for k in range(spec.instances_per_az):
            inst = ec2.run_instances(
                ImageId=image_id,
                MinCount=1,
                MaxCount=1,
                InstanceType="t3.medium",
                SubnetId=subnet_ids[i],
                SecurityGroupIds=[sg],
                UserData=f"#!/bin/bash\necho ECS_CLUSTER={spec.cluster} >> /etc/ecs/ecs.config\n",
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": _tags(f"{spec.cluster}-{az}-{k + 1}", cluster=spec.cluster)}
                ],
            )["Instances"][0]
            instance_ids.append(inst["InstanceId"])
            doc = {
                "instanceId": inst["InstanceId"],
                "availabilityZone": az,
                "region": spec.region,
                "privateIp": inst.get("PrivateIpAddress"),
                "instanceType": "t3.medium",
                "imageId": image_id,
            }
            ci = ecs.register_container_instance(cluster=spec.cluster, instanceIdentityDocument=json.dumps(doc))
            ci_arns.append(ci["containerInstance"]["containerInstanceArn"])

    for idx, ports in sorted(spec.used_host_ports.items()):
        if not ports:
            continue
        family = f"{spec.cluster}-sidecar-{idx}"
        ecs.register_task_definition(
            family=family,
            networkMode="bridge",
            containerDefinitions=[
                {
                    "name": "sidecar",
                    "image": "public.ecr.aws/docker/library/busybox:latest",
                    "memory": 32,
                    "essential": True,
                    "portMappings": [{"containerPort": p, "hostPort": p, "protocol": "tcp"} for p in ports],
                }
            ],
        )
        ecs.start_task(
            cluster=spec.cluster, taskDefinition=family, containerInstances=[ci_arns[idx]], startedBy="platform-team"
        )

    _seed_task_needs(session, spec)

    cert_pem, key_pem = _self_signed(spec.domain_name)
    cert_arn = acm.import_certificate(
        Certificate=cert_pem, PrivateKey=key_pem, Tags=[{"Key": "Name", "Value": spec.domain_name}]
    )["CertificateArn"]

    apigw.create_domain_name(
        domainName=spec.domain_name,
        regionalCertificateArn=cert_arn,
        endpointConfiguration={"types": ["REGIONAL"]},
        securityPolicy="TLS_1_2",
    )
    api_id = apigw.create_rest_api(name=spec.other_api_name, endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    proxy = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="{proxy+}")["id"]
    apigw.put_method(
        restApiId=api_id,
        resourceId=proxy,
        httpMethod="ANY",
        authorizationType="NONE",
        requestParameters={"method.request.path.proxy": True},
    )
    apigw.put_integration(
        restApiId=api_id,
        resourceId=proxy,
        httpMethod="ANY",
        type="HTTP_PROXY",
        integrationHttpMethod="ANY",
        uri=f"http://{spec.other_api_name}.internal.example.com/{{proxy}}",
        requestParameters={"integration.request.path.proxy": "method.request.path.proxy"},
    )
    apigw.create_deployment(restApiId=api_id, stageName=spec.other_stage)
    apigw.create_base_path_mapping(
        domainName=spec.domain_name, basePath=spec.other_base_path, restApiId=api_id, stage=spec.other_stage
    )

    return {
        "region": spec.region,
        "vpc_id": vpc_id,
        "azs": azs,
        "subnet_ids": subnet_ids,
        "public_subnet_ids": public_subnet_ids,
        "security_group_id": sg,
        "instance_ids": instance_ids,
        "container_instance_arns": ci_arns,
        "cluster": spec.cluster,
        "certificate_arn": cert_arn,
        "domain_name": spec.domain_name,
        "other_api_id": api_id,
    }


def _fake_manifest(repo: str, tag: str) -> str:
    """A Docker image manifest (schema 2) ECR accepts: the sandbox never pulls layers, it only resolves the tag."""
    import hashlib

    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                   "digest": digest(f"{repo}:{tag}:config")},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1,
                    "digest": digest(f"{repo}:{tag}:layer")}],
    })


def _seed_task_needs(session: boto3.Session, spec: WorldSpec) -> None:
    """The parameters, secrets, images and execution role the service's tasks resolve when they start."""
    ssm = session.client("ssm", region_name=spec.region)
    for name, value in sorted(spec.ssm_parameters.items()):
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    sm = session.client("secretsmanager", region_name=spec.region)
    for name, value in sorted(spec.secrets.items()):
        sm.create_secret(Name=name, SecretString=value)
    ecr = session.client("ecr", region_name=spec.region)
    for image in spec.ecr_images:
        repo, _, tag = image.partition(":")
        try:
            ecr.create_repository(repositoryName=repo)
        except ecr.exceptions.RepositoryAlreadyExistsException:
            pass
        ecr.put_image(repositoryName=repo, imageManifest=_fake_manifest(repo, tag or "latest"),
                      imageTag=tag or "latest")
    if spec.execution_role:
        iam = session.client("iam")
        try:  # IAM is global: a second world in the same sandbox shares the role
            iam.create_role(RoleName=spec.execution_role, AssumeRolePolicyDocument=json.dumps(ECS_TASKS_TRUST),
                            Description="Lets ECS pull images and resolve secrets for the tasks")
        except iam.exceptions.EntityAlreadyExistsException:
            pass
