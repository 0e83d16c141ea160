"""vpclink-runbooks: expose a private ECS service through API Gateway, VPC Link and an internal NLB."""
