"""Sessions share one botocore data loader per process (models parsed once), and nothing else."""

from __future__ import annotations

from vpclink_runbooks.aws import session as aws_mod


def test_sessions_share_parsed_models_but_not_credentials_or_region():
    first = aws_mod.new_session(aws_access_key_id="AKIAFIRST", aws_secret_access_key="s1", region_name="eu-west-2")
    first.client("elbv2")
    loader = first._session.get_component("data_loader")
    paths = list(loader.search_paths)
    second = aws_mod.new_session(aws_access_key_id="AKIASECOND", aws_secret_access_key="s2",
                                 aws_session_token="t2", region_name="us-east-1")
    assert second._session.get_component("data_loader") is loader
    # boto3 adds its data directory for every session it wraps; the shared loader's path does not grow
    assert loader.search_paths == paths and len(set(paths)) == len(paths)

    # the second session's elbv2 model comes from the cache: no JSON file is read again
    reads = []
    original = loader.file_loader.load_file
    loader.file_loader.load_file = lambda path: reads.append(path) or original(path)
    try:
        client = second.client("elbv2")
    finally:
        loader.file_loader.load_file = original
    assert not [path for path in reads if "elbv2" in path], reads

    assert client.meta.region_name == "us-east-1"
    assert first.get_credentials().access_key == "AKIAFIRST" and first.get_credentials().token is None
    assert second.get_credentials().access_key == "AKIASECOND" and second.get_credentials().token == "t2"
