"""Checks what `terraform apply` of this folder created in moto, through
moto's AWS API (boto3), not through Terraform's own view of it.

Run by `cargo xtask test` with the moto venv's python:
    python check.py --endpoint http://127.0.0.1:PORT --state STATE_FILE

Prints one line per check and exits 1 when any fails.
"""

import argparse
import json
import sys

import boto3

FAILED = []


def check(ok, what):
    print(("  ok   " if ok else "  FAIL ") + what)
    if not ok:
        FAILED.append(what)


def outputs(state_path):
    with open(state_path, encoding="utf-8") as f:
        state = json.load(f)
    return {k: v["value"] for k, v in state["outputs"].items()}


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def check_subnets(ec2, out):
    cluster_tag = f"kubernetes.io/cluster/{out['cluster_name']}"
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [out["vpc_id"]]}])["Subnets"]
    by_tier = {}
    for s in subnets:
        by_tier.setdefault(tags(s).get("Tier"), []).append(s)
    check(all(len(by_tier.get(t, [])) == 3 for t in ("public", "private", "database")),
          "three subnets in each tier (public, private, database)")
    for s in by_tier.get("public", []):
        t = tags(s)
        check(t.get("kubernetes.io/role/elb") == "1" and t.get(cluster_tag) == "shared"
              and "kubernetes.io/role/internal-elb" not in t,
              f"public subnet {s['AvailabilityZone']} has kubernetes.io/role/elb=1 and {cluster_tag}=shared")
    for s in by_tier.get("private", []):
        t = tags(s)
        check(t.get("kubernetes.io/role/internal-elb") == "1" and t.get(cluster_tag) == "shared"
              and "kubernetes.io/role/elb" not in t,
              f"private subnet {s['AvailabilityZone']} has kubernetes.io/role/internal-elb=1 and {cluster_tag}=shared")
    for s in by_tier.get("database", []):
        t = tags(s)
        check(not any(k.startswith("kubernetes.io/") for k in t),
              f"database subnet {s['AvailabilityZone']} carries no kubernetes.io tag")
    check(all(tags(s).get("Environment") == "moto" for s in subnets),
          "provider default_tags reached every subnet")


def check_irsa(iam, out):
    issuer = out["oidc_issuer"].removeprefix("https://")
    providers = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    arns = [p["Arn"] for p in providers if p["Arn"].endswith(issuer)]
    check(len(arns) == 1, f"one IAM OIDC provider for {issuer}")
    if arns:
        p = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arns[0])
        check(p.get("ClientIDList") == ["sts.amazonaws.com"], "the OIDC provider's audience is sts.amazonaws.com")
    expected = {
        "app": "system:serviceaccount:admission:admission",
        "lb_controller": "system:serviceaccount:kube-system:aws-load-balancer-controller",
        "external_dns": "system:serviceaccount:kube-system:external-dns",
        "node_autoscaler": "system:serviceaccount:kube-system:cluster-autoscaler",
    }
    for key, role_name in out["role_names"].items():
        trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
        if isinstance(trust, str):
            trust = json.loads(trust)
        statements = trust["Statement"]
        st = statements[0]
        cond = st.get("Condition", {}).get("StringEquals", {})
        check(len(statements) == 1 and st.get("Action") == "sts:AssumeRoleWithWebIdentity"
              and arns and st.get("Principal", {}).get("Federated") == arns[0],
              f"role {role_name} is assumed with a web identity from the OIDC provider only")
        check(cond.get(f"{issuer}:sub") == expected[key],
              f"role {role_name} trusts sub={expected[key]} only")
        check(cond.get(f"{issuer}:aud") == "sts.amazonaws.com",
              f"role {role_name} requires aud=sts.amazonaws.com")
    app_role = out["app_role_name"]
    names = iam.list_role_policies(RoleName=app_role)["PolicyNames"]
    attached = iam.list_attached_role_policies(RoleName=app_role)["AttachedPolicies"]
    check(len(names) == 1 and not attached, f"role {app_role} has one inline policy and nothing attached")
    if names:
        doc = iam.get_role_policy(RoleName=app_role, PolicyName=names[0])["PolicyDocument"]
        if isinstance(doc, str):
            doc = json.loads(doc)
        actions = sorted(a for s in doc["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
        check(actions == sorted(["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStream",
                                 "kinesis:DescribeStreamSummary", "kms:GenerateDataKey"]),
              f"role {app_role} may only put records, describe its stream and generate data keys")
        resources = {r for s in doc["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])}
        check("*" not in resources and any(":stream/" + out["stream_name"] in r for r in resources),
              f"role {app_role} is limited to its stream and key (no *)")


def check_eks(eks, out):
    c = eks.describe_cluster(name=out["cluster_name"])["cluster"]
    vpc = c.get("resourcesVpcConfig", {})
    check(c.get("version") == "1.35", "the cluster runs Kubernetes 1.35")
    check(vpc.get("endpointPrivateAccess") is True and vpc.get("endpointPublicAccess") is False,
          "the API endpoint is private only")
    check(vpc.get("securityGroupIds") == [out["cluster_security_group_id"]],
          "the cluster carries the group the database trusts")
    check(c.get("identity", {}).get("oidc", {}).get("issuer") == out["oidc_issuer"],
          "the IRSA roles trust the cluster's own issuer")
    encryption = c.get("encryptionConfig", [])
    check(len(encryption) == 1 and encryption[0].get("resources") == ["secrets"]
          and encryption[0].get("provider", {}).get("keyArn"), "Kubernetes secrets are encrypted with a KMS key")
    groups = eks.list_nodegroups(clusterName=out["cluster_name"])["nodegroups"]
    check(len(groups) == 1, "one managed node group")


def check_stream(kinesis, out):
    s = kinesis.describe_stream_summary(StreamName=out["stream_name"])["StreamDescriptionSummary"]
    check(s.get("EncryptionType") == "KMS" and s.get("KeyId"), "the stream is encrypted with a KMS key")


def check_aurora(rds, ec2, secrets, out, state_text):
    c = rds.describe_db_clusters(DBClusterIdentifier=out["aurora_cluster_id"])["DBClusters"][0]
    check(c.get("StorageEncrypted") is True, "Aurora storage is encrypted")
    check(c.get("Engine") == "aurora-mysql" and c.get("EngineVersion", "").startswith("8.0.mysql_aurora.3."),
          "Aurora MySQL 3 (MySQL 8.0)")
    members = c.get("DBClusterMembers", [])
    check(len(members) == 2 and sum(m["IsClusterWriter"] for m in members) == 1, "one writer and one reader")
    instances = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [out["aurora_cluster_id"]]}])["DBInstances"]
    check(instances and all(i.get("PubliclyAccessible") is False for i in instances), "no instance is publicly accessible")
    sg = ec2.describe_security_groups(GroupIds=[out["aurora_security_group_id"]])["SecurityGroups"][0]
    perms = sg.get("IpPermissions", [])
    check(len(perms) == 1 and perms[0].get("FromPort") == 3306 and perms[0].get("ToPort") == 3306
          and not perms[0].get("IpRanges") and not perms[0].get("Ipv6Ranges")
          and [g["GroupId"] for g in perms[0].get("UserIdGroupPairs", [])] == [out["cluster_security_group_id"]],
          "the database security group opens 3306 to the cluster security group and nothing else")
    arns = out["db_secret_arns"]
    check(sorted(arns) == ["app", "master", "migrator", "reader"], "secrets for master, migrator, app and reader")
    for user in ("migrator", "app", "reader"):
        value = json.loads(secrets.get_secret_value(SecretId=arns[user])["SecretString"])
        check(value.get("username") == user and len(value.get("password", "")) == 32,
              f"secret of `{user}` holds its user name and a generated 32-character password")
        check(value.get("password", "") not in state_text,
              f"the password of `{user}` is not in the Terraform state (write-only)")
        host = value.get("host", "")
        want = c.get("ReaderEndpoint") if user == "reader" else c.get("Endpoint")
        check(host == want, f"secret of `{user}` points at the {'reader' if user == 'reader' else 'writer'} endpoint")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--state", required=True)
    args = parser.parse_args()

    with open(args.state, encoding="utf-8") as f:
        state_text = f.read()
    out = outputs(args.state)
    session = boto3.session.Session(aws_access_key_id="moto", aws_secret_access_key="moto",
                                    region_name="ap-northeast-2")

    def client(name):
        return session.client(name, endpoint_url=args.endpoint)

    check_subnets(client("ec2"), out)
    check_irsa(client("iam"), out)
    check_eks(client("eks"), out)
    check_stream(client("kinesis"), out)
    check_aurora(client("rds"), client("ec2"), client("secretsmanager"), out, state_text)

    if FAILED:
        print(f"{len(FAILED)} moto checks failed")
        sys.exit(1)
    print("all moto checks passed")


if __name__ == "__main__":
    main()
