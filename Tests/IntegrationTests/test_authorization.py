"""Authorization through a real kmsd: key policies, IAM users and roles (created with boto3's IAM
client, assumed through kmsd's STS by an aws CLI profile), grants, cross-account use, endpoint
policies, DryRun, the lockout check — and kmsfs mounts whose principals may do only what a
mount needs."""
import json
import os
import re
import subprocess
import tempfile
import time

import boto3
import botocore.exceptions
import pytest

from conftest import ACCOUNT, REGION, Kmsd
from test_mount import KMSFS, foreground_mount, new_volume

OTHER = "444455556666"
OTHER_ROOT = ("AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")

SEED = """
accounts:
  - id: "%s"
    name: partner
    accessKeys:
      - id: %s
        secret: %s
""" % (OTHER, *OTHER_ROOT)

# An endpoint policy: through this listener, only data-key calls on account 111122223333's keys.
ENDPOINT_POLICY = {
    "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
         "Resource": "arn:aws:kms:*:%s:key/*" % ACCOUNT},
    ]
}


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory(prefix="kmsd-authz-") as directory:
        seed = os.path.join(directory, "seed.yaml")
        with open(seed, "w") as f:
            f.write(SEED)
        policy = os.path.join(directory, "endpoint.json")
        with open(policy, "w") as f:
            json.dump(ENDPOINT_POLICY, f)
        kmsd = Kmsd(directory, extra_args=("--seed", seed, "--listen", "tcp://127.0.0.1:0?policy=" + policy))
        try:
            yield kmsd
        finally:
            kmsd.stop()


def client(server, service, credentials, endpoint=None, region=REGION):
    access, secret, *token = credentials
    return boto3.client(service, endpoint_url=endpoint or server.endpoint, region_name=region,
                        aws_access_key_id=access, aws_secret_access_key=secret,
                        aws_session_token=token[0] if token else None)


def root(server):
    return (server.access_key, server.secret_key)


def error_code(call):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def new_user(server, name, policy=None):
    """A user of account 1 (created through the IAM API as the root) and its credentials."""
    iam = client(server, "iam", root(server))
    iam.create_user(UserName=name)
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return (key["AccessKeyId"], key["SecretAccessKey"])


def allow(actions, resource="*", condition=None):
    statement = {"Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def test_iam_users_access_keys_and_identity_policies(server):
    iam = client(server, "iam", root(server))
    reader = new_user(server, "reader", allow(["kms:Encrypt", "kms:DescribeKey"]))
    assert iam.get_user(UserName="reader")["User"]["Arn"] == "arn:aws:iam::%s:user/reader" % ACCOUNT
    assert iam.list_user_policies(UserName="reader")["PolicyNames"] == ["p"]
    document = iam.get_user_policy(UserName="reader", PolicyName="p")["PolicyDocument"]  # botocore decodes it
    assert (json.loads(document) if isinstance(document, str) else document)["Statement"][0]["Action"] == ["kms:Encrypt", "kms:DescribeKey"]
    key = client(server, "kms", root(server)).create_key()["KeyMetadata"]["Arn"]
    kms = client(server, "kms", reader)
    assert kms.encrypt(KeyId=key, Plaintext=b"x")["KeyId"] == key
    assert error_code(lambda: kms.generate_data_key(KeyId=key, KeySpec="AES_256")) == "AccessDeniedException"
    assert error_code(lambda: kms.create_key()) == "AccessDeniedException"
    # STS says who the credentials are.
    identity = client(server, "sts", reader).get_caller_identity()
    assert identity["Arn"] == "arn:aws:iam::%s:user/reader" % ACCOUNT and identity["Account"] == ACCOUNT
    # A second key; a third is over IAM's quota. An inactive key signs nothing.
    second = iam.create_access_key(UserName="reader")["AccessKey"]
    assert error_code(lambda: iam.create_access_key(UserName="reader")) == "LimitExceeded"
    listed = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName="reader")["AccessKeyMetadata"]}
    assert listed == {reader[0]: "Active", second["AccessKeyId"]: "Active"}
    iam.update_access_key(UserName="reader", AccessKeyId=reader[0], Status="Inactive")
    assert error_code(lambda: kms.encrypt(KeyId=key, Plaintext=b"x")) == "UnrecognizedClientException"
    iam.update_access_key(UserName="reader", AccessKeyId=reader[0], Status="Active")
    assert kms.encrypt(KeyId=key, Plaintext=b"x")["KeyId"] == key
    # Users without iam: permissions manage nothing; IAM's errors are IAM's.
    assert error_code(lambda: client(server, "iam", reader).create_user(UserName="eve")) == "AccessDenied"
    assert error_code(lambda: iam.delete_user(UserName="reader")) == "DeleteConflict"
    assert error_code(lambda: iam.get_user(UserName="nobody")) == "NoSuchEntity"
    assert error_code(lambda: iam.create_user(UserName="reader")) == "EntityAlreadyExists"
    assert error_code(lambda: iam.put_user_policy(UserName="reader", PolicyName="bad", PolicyDocument="{}")) == "MalformedPolicyDocument"


def test_key_policies_through_boto3(server):
    kms = client(server, "kms", root(server))
    alice = new_user(server, "alice")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCOUNT}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "AliceInTeamA", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/alice" % ACCOUNT},
         "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:team": "a"}}},
    ]}
    key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    assert kms.list_key_policies(KeyId=key)["PolicyNames"] == ["default"]
    assert json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]) == policy
    as_alice = client(server, "kms", alice)
    blob = as_alice.encrypt(KeyId=key, Plaintext=b"secret", EncryptionContext={"team": "a"})["CiphertextBlob"]
    assert as_alice.decrypt(CiphertextBlob=blob, EncryptionContext={"team": "a"})["Plaintext"] == b"secret"
    assert error_code(lambda: as_alice.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"team": "b"})) == "AccessDeniedException"
    assert error_code(lambda: as_alice.describe_key(KeyId=key)) == "AccessDeniedException"
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        as_alice.disable_key(KeyId=key)
    message = denied.value.response["Error"]["Message"]
    assert message.startswith("User: arn:aws:iam::%s:user/alice is not authorized to perform: kms:DisableKey on resource: %s" % (ACCOUNT, key))
    # The lockout check, and its bypass.
    alone = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/alice" % ACCOUNT}, "Action": "kms:*", "Resource": "*"}]}
    assert error_code(lambda: kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(alone))) == "MalformedPolicyDocumentException"
    assert error_code(lambda: kms.put_key_policy(KeyId=key, PolicyName="default", Policy="{not json")) == "MalformedPolicyDocumentException"
    assert error_code(lambda: kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(
        {"Statement": [dict(alone["Statement"][0], Principal={"AWS": "arn:aws:iam::%s:user/ghost" % ACCOUNT})]}))) == "MalformedPolicyDocumentException"
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(alone), BypassPolicyLockoutSafetyCheck=True)
    assert error_code(lambda: kms.describe_key(KeyId=key)) == "AccessDeniedException"
    assert as_alice.describe_key(KeyId=key)["KeyMetadata"]["Arn"] == key
    # DryRun: decided, not done.
    assert error_code(lambda: as_alice.encrypt(KeyId=key, Plaintext=b"x", DryRun=True)) == "DryRunOperationException"
    assert error_code(lambda: kms.encrypt(KeyId=key, Plaintext=b"x", DryRun=True)) == "AccessDeniedException"


def test_a_deleted_user_made_again_does_not_inherit_the_key_policy(server):
    """As in AWS: deleting a user turns its ARN in key policies and trust policies into its unique
    ID; a user made again under the same name (another unique ID) is not who the policy names."""
    kms, iam = client(server, "kms", root(server)), client(server, "iam", root(server))
    first = new_user(server, "dana")
    dana = "arn:aws:iam::%s:user/dana" % ACCOUNT
    unique_id = iam.get_user(UserName="dana")["User"]["UserId"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCOUNT}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "Carol", "Effect": "Allow", "Principal": {"AWS": [dana]}, "Action": "kms:DescribeKey", "Resource": "*"},
    ]}
    key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": dana}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName="danas-role", AssumeRolePolicyDocument=json.dumps(trust))
    assert client(server, "kms", first).describe_key(KeyId=key)["KeyMetadata"]["Arn"] == key
    iam.delete_access_key(UserName="dana", AccessKeyId=first[0])
    iam.delete_user(UserName="dana")
    shown = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    assert shown["Statement"][1]["Principal"] == {"AWS": [unique_id]} and dana not in json.dumps(shown)
    role_trust = iam.get_role(RoleName="danas-role")["Role"]["AssumeRolePolicyDocument"]
    assert unique_id in (role_trust if isinstance(role_trust, str) else json.dumps(role_trust))
    again = new_user(server, "dana")
    assert iam.get_user(UserName="dana")["User"]["UserId"] != unique_id
    assert error_code(lambda: client(server, "kms", again).describe_key(KeyId=key)) == "AccessDeniedException"
    assert error_code(lambda: client(server, "sts", again).assume_role(RoleArn="arn:aws:iam::%s:role/danas-role" % ACCOUNT,
                                                                       RoleSessionName="again")) == "AccessDenied"
    # The policy as shown is a policy kmsd accepts back.
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(shown))
    # An ARN spelled with JSON escapes (`user\/erin`, as several JSON writers write it) is retired too.
    erin = new_user(server, "erin")
    escaped = json.dumps(dict(policy, Statement=[policy["Statement"][0], dict(policy["Statement"][1], Principal={"AWS": "arn:aws:iam::%s:user/erin" % ACCOUNT})]))
    escaped = escaped.replace("user/erin", "user\\/erin")
    assert "user\\/erin" in escaped
    second = kms.create_key(Policy=escaped)["KeyMetadata"]["Arn"]
    assert client(server, "kms", erin).describe_key(KeyId=second)["KeyMetadata"]["Arn"] == second
    iam.delete_access_key(UserName="erin", AccessKeyId=erin[0])
    iam.delete_user(UserName="erin")
    erin_again = new_user(server, "erin")
    assert error_code(lambda: client(server, "kms", erin_again).describe_key(KeyId=second)) == "AccessDeniedException"


def test_cross_account_keys_and_grants(server):
    kms = client(server, "kms", root(server))
    partner = client(server, "kms", OTHER_ROOT)
    # ListAliases by another account's key: the same refusal whether the key exists or not.
    mine = kms.create_key()["KeyMetadata"]["Arn"]
    missing = mine.rsplit("/", 1)[0] + "/11111111-2222-3333-4444-555555555555"
    answers = []
    for arn in (mine, missing):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            partner.list_aliases(KeyId=arn)
        answers.append((raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"].replace(arn, "ARN")))
    assert answers[0] == answers[1] and answers[0][0] == "AccessDeniedException", answers
    key = kms.create_key(Policy=json.dumps({"Statement": [
        {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % OTHER},
         "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"], "Resource": "*"},
    ]}))["KeyMetadata"]["Arn"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"shared")["CiphertextBlob"]
    assert partner.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared"
    assert partner.describe_key(KeyId=key)["KeyMetadata"]["AWSAccountId"] == ACCOUNT
    assert error_code(lambda: partner.encrypt(KeyId=key, Plaintext=b"x")) == "AccessDeniedException"
    assert error_code(lambda: partner.describe_key(KeyId=key.split("/")[-1])) == "NotFoundException"  # an ID names the caller's own key

    # A grant: bob (no policy of his own) may encrypt with a context that includes the constraint.
    bob = new_user(server, "bob")
    grant = kms.create_grant(KeyId=key, GranteePrincipal="arn:aws:iam::%s:user/bob" % ACCOUNT, Operations=["Encrypt", "Decrypt"],
                             RetiringPrincipal="arn:aws:iam::%s:root" % ACCOUNT, Name="bob-app",
                             Constraints={"EncryptionContextSubset": {"app": "one"}})
    as_bob = client(server, "kms", bob)
    sealed = as_bob.encrypt(KeyId=key, Plaintext=b"b", EncryptionContext={"app": "one", "x": "y"}, GrantTokens=[grant["GrantToken"]])
    assert as_bob.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"app": "one", "x": "y"})["Plaintext"] == b"b"
    assert error_code(lambda: as_bob.encrypt(KeyId=key, Plaintext=b"b", EncryptionContext={"app": "two"})) == "AccessDeniedException"
    assert error_code(lambda: as_bob.encrypt(KeyId=key, Plaintext=b"b", GrantTokens=["forged"])) == "InvalidGrantTokenException"
    grants = kms.list_grants(KeyId=key)["Grants"]
    assert [g["GrantId"] for g in grants] == [grant["GrantId"]]
    assert grants[0]["Constraints"] == {"EncryptionContextSubset": {"app": "one"}} and grants[0]["IssuingAccount"] == "arn:aws:iam::%s:root" % ACCOUNT
    assert kms.list_retirable_grants(RetiringPrincipal="arn:aws:iam::%s:root" % ACCOUNT)["Grants"][0]["GrantId"] == grant["GrantId"]
    assert error_code(lambda: kms.create_grant(KeyId=key, GranteePrincipal="arn:aws:iam::%s:user/bob" % ACCOUNT,
                                               Operations=["Encrypt"], DryRun=True)) == "DryRunOperationException"
    assert len(kms.list_grants(KeyId=key)["Grants"]) == 1
    # The partner account grants its own user decrypt (its policy allowed CreateGrant).
    partner_grant = partner.create_grant(KeyId=key, GranteePrincipal="arn:aws:iam::%s:root" % OTHER, Operations=["Decrypt"])
    kms.revoke_grant(KeyId=key, GrantId=partner_grant["GrantId"])
    kms.retire_grant(GrantToken=grant["GrantToken"])
    assert error_code(lambda: as_bob.encrypt(KeyId=key, Plaintext=b"b", EncryptionContext={"app": "one"})) == "AccessDeniedException"


def test_an_aws_cli_profile_assumes_a_role_through_kmsd(server, tmp_path):
    iam = client(server, "iam", root(server))
    alice = new_user(server, "carol", allow("sts:AssumeRole", "arn:aws:iam::%s:role/reader" % ACCOUNT))
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="reader", PolicyName="use", PolicyDocument=json.dumps(allow(["kms:Encrypt", "kms:Decrypt"])))
    assert iam.get_role(RoleName="reader")["Role"]["Arn"] == "arn:aws:iam::%s:role/reader" % ACCOUNT
    key = client(server, "kms", root(server)).create_key()["KeyMetadata"]["Arn"]
    (tmp_path / "config").write_text(
        "[profile reader]\nrole_arn = arn:aws:iam::%s:role/reader\nsource_profile = carol\nregion = %s\n"
        "[profile carol]\nregion = %s\n" % (ACCOUNT, REGION, REGION))
    (tmp_path / "credentials").write_text("[carol]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % alice)
    (tmp_path / "plain").write_bytes(b"through a role")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # HOME too: the CLI caches assumed-role credentials under ~/.aws/cli/cache.
    env.update(AWS_CONFIG_FILE=str(tmp_path / "config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
               AWS_ENDPOINT_URL=server.endpoint, HOME=str(tmp_path))

    def aws(*arguments):
        result = subprocess.run(["aws", *arguments, "--profile", "reader", "--output", "json"], capture_output=True, text=True,
                                env=env, timeout=60)
        return result.returncode, result.stdout, result.stderr

    code, out, err = aws("sts", "get-caller-identity")
    assert code == 0, err
    assert json.loads(out)["Arn"].startswith("arn:aws:sts::%s:assumed-role/reader/" % ACCOUNT)
    code, out, err = aws("kms", "encrypt", "--key-id", key, "--plaintext", "fileb://%s" % (tmp_path / "plain"))
    assert code == 0, err
    assert json.loads(out)["KeyId"] == key
    code, out, err = aws("kms", "generate-data-key", "--key-id", key, "--key-spec", "AES_256")
    assert code != 0 and "AccessDeniedException" in err and "assumed-role/reader" in err
    # Whoever the trust policy does not name (through its account's identity policies) cannot assume it.
    stranger = new_user(server, "stranger")
    assert error_code(lambda: client(server, "sts", stranger).assume_role(RoleArn="arn:aws:iam::%s:role/reader" % ACCOUNT,
                                                                            RoleSessionName="s1")) == "AccessDenied"
    # A forged session token is refused.
    credentials = client(server, "sts", alice).assume_role(RoleArn="arn:aws:iam::%s:role/reader" % ACCOUNT, RoleSessionName="s1")["Credentials"]
    token = credentials["SessionToken"]
    forged = token[:-8] + ("A" if token[-8] != "A" else "B") + token[-7:]
    session = client(server, "kms", (credentials["AccessKeyId"], credentials["SecretAccessKey"], forged))
    assert error_code(lambda: session.encrypt(KeyId=key, Plaintext=b"x")) == "UnrecognizedClientException"
    genuine = client(server, "kms", (credentials["AccessKeyId"], credentials["SecretAccessKey"], token))
    assert genuine.encrypt(KeyId=key, Plaintext=b"x")["KeyId"] == key


def test_an_endpoint_policy_narrows_what_its_listener_serves(server):
    endpoint = server.endpoints[-1]
    kms = client(server, "kms", root(server))
    key = kms.create_key()["KeyMetadata"]["Arn"]
    through = client(server, "kms", root(server), endpoint=endpoint)
    data_key = through.generate_data_key(KeyId=key, KeySpec="AES_256")
    assert through.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
    assert error_code(lambda: through.encrypt(KeyId=key, Plaintext=b"x")) == "AccessDeniedException"
    assert error_code(lambda: through.create_key()) == "AccessDeniedException"
    assert error_code(lambda: through.disable_key(KeyId=key)) == "AccessDeniedException"
    kms.encrypt(KeyId=key, Plaintext=b"x")  # the other listener has no endpoint policy
    # The partner's keys are outside the endpoint's Resource.
    partner_key = client(server, "kms", OTHER_ROOT).create_key()["KeyMetadata"]["Arn"]
    partner_through = client(server, "kms", OTHER_ROOT, endpoint=endpoint)
    assert error_code(lambda: partner_through.generate_data_key(KeyId=partner_key, KeySpec="AES_256")) == "AccessDeniedException"


def test_decisions_are_audited_with_what_decided(server):
    kms = client(server, "kms", root(server))
    key = kms.create_key()["KeyMetadata"]["Arn"]
    kms.generate_data_key(KeyId=key, KeySpec="AES_256")
    nobody = new_user(server, "nobody")
    assert error_code(lambda: client(server, "kms", nobody).generate_data_key(KeyId=key, KeySpec="AES_256")) == "AccessDeniedException"
    kmsd_bin = os.environ.get("KMSD_BIN") or os.path.join(os.path.dirname(__file__), "../../.build/debug/kmsd")
    deadline = time.time() + 10
    while True:  # audit records are group-committed: a few milliseconds after the answer
        out = subprocess.run([kmsd_bin, "audit", "tail", "--store", server.store, "--key", key, "--limit", "10"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        if any(r.get("errorCode") == "AccessDeniedException" for r in records) or time.time() > deadline:
            break
        time.sleep(0.1)
    allowed = [r for r in records if r["operation"] == "GenerateDataKey" and "errorCode" not in r]
    denied = [r for r in records if r["operation"] == "GenerateDataKey" and r.get("errorCode") == "AccessDeniedException"]
    assert allowed and 'key policy statement "Enable IAM User Permissions"' in allowed[-1]["decision"]
    assert denied and denied[-1]["principal"].endswith(":user/nobody") and denied[-1]["decision"].startswith("denied: no identity policy allows")


# kmsfs on least privilege: the mount's principal may only GenerateDataKey and Decrypt for its
# own volume; the key's administrator may manage the key but not use it.

def mount_environment(server, credentials):
    return dict(os.environ, AWS_ACCESS_KEY_ID=credentials[0], AWS_SECRET_ACCESS_KEY=credentials[1],
                AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")


def volume_id(cipher):
    with open(os.path.join(cipher, "kmsfs.conf")) as f:
        return json.load(f)["volumeID"]


def key_policy(volume_condition, initializing=False):
    """The key's policy: an administrator who manages it, and the mount's principal, who may only
    make and open data keys for the volume (and, while the volume is being made, describe the key)."""
    setup = [{"Sid": "InitVolume", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/mounter" % ACCOUNT},
              "Action": "kms:DescribeKey", "Resource": "*"}] if initializing else []
    return json.dumps({"Version": "2012-10-17", "Statement": setup + [
        {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/keyadmin" % ACCOUNT},
         "Action": ["kms:Describe*", "kms:List*", "kms:Get*", "kms:Put*", "kms:Enable*", "kms:Disable*", "kms:Update*",
                    "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
                    "kms:CreateGrant", "kms:RevokeGrant", "kms:ListGrants"], "Resource": "*"},
        {"Sid": "MountOneVolume", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/mounter" % ACCOUNT},
         "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*", "Condition": volume_condition},
    ]})


def test_a_mount_on_least_privilege_and_an_admin_who_cannot_use_the_key(server):
    admin = new_user(server, "keyadmin", allow("kms:CreateKey"))
    mounter = new_user(server, "mounter")
    # The administrator creates the key; the lockout check passes, as the policy lets it manage the key.
    key = client(server, "kms", admin).create_key(
        Policy=key_policy({"StringLike": {"kms:EncryptionContext:kmsfs:volume": "*"}}, initializing=True))["KeyMetadata"]["Arn"]
    env = mount_environment(server, mounter)
    with new_volume("kmsfs-least-", *server.volume_arguments(key), env=env) as (cipher, mount_point):
        # Once the volume exists, its key serves that volume only.
        as_admin = client(server, "kms", admin)
        as_admin.put_key_policy(KeyId=key, PolicyName="default",
                                Policy=key_policy({"StringEquals": {"kms:EncryptionContext:kmsfs:volume": volume_id(cipher)}}))
        with foreground_mount(cipher, mount_point, env=env):
            with open(os.path.join(mount_point, "file"), "wb") as f:
                f.write(b"least privilege" * 1000)
        with foreground_mount(cipher, mount_point, env=env):
            with open(os.path.join(mount_point, "file"), "rb") as f:
                assert f.read() == b"least privilege" * 1000
        # The mount's principal cannot use the key for another volume, nor outside kmsfs.
        with tempfile.TemporaryDirectory(prefix="kmsfs-least-other-") as other:
            failed = subprocess.run([KMSFS, "init", os.path.join(other, "cipher"), *server.volume_arguments(key)],
                                    capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
        assert failed.returncode != 0 and ("refused" in failed.stderr or "denied" in failed.stderr.lower()), failed.stderr
        as_mounter = client(server, "kms", mounter)
        assert error_code(lambda: as_mounter.encrypt(KeyId=key, Plaintext=b"x")) == "AccessDeniedException"
        assert error_code(lambda: as_mounter.generate_data_key(KeyId=key, KeySpec="AES_256")) == "AccessDeniedException"
        assert error_code(lambda: as_mounter.disable_key(KeyId=key)) == "AccessDeniedException"
        # Separation of duties: the administrator manages the key but cannot use it.
        assert error_code(lambda: as_admin.generate_data_key(KeyId=key, KeySpec="AES_256",
                                                             EncryptionContext={"kmsfs:volume": volume_id(cipher)})) == "AccessDeniedException"
        as_admin.disable_key(KeyId=key)
        refused = subprocess.run([KMSFS, "mount", cipher, mount_point], capture_output=True, text=True, env=env,
                                 stdin=subprocess.DEVNULL, timeout=60)
        assert refused.returncode != 0, refused.stderr
        as_admin.enable_key(KeyId=key)


def test_a_grant_lets_one_hosts_mount_read_one_volume(server):
    host = new_user(server, "host-1")
    key = client(server, "kms", root(server)).create_key()["KeyMetadata"]["Arn"]
    owner = server.client_environment()
    with new_volume("kmsfs-granted-", *server.volume_arguments(key), env=owner) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, env=owner):
            with open(os.path.join(mount_point, "report"), "wb") as f:
                f.write(b"quarterly numbers")
        kms = client(server, "kms", root(server))
        env = mount_environment(server, host)
        refused = subprocess.run([KMSFS, "mount", cipher, mount_point], capture_output=True, text=True, env=env,
                                 stdin=subprocess.DEVNULL, timeout=60)
        assert refused.returncode != 0, refused.stderr
        grant = kms.create_grant(KeyId=key, GranteePrincipal="arn:aws:iam::%s:user/host-1" % ACCOUNT,
                                 Operations=["Decrypt", "GenerateDataKey"],
                                 Constraints={"EncryptionContextSubset": {"kmsfs:volume": volume_id(cipher)}})
        with foreground_mount(cipher, mount_point, env=env):
            with open(os.path.join(mount_point, "report"), "rb") as f:
                assert f.read() == b"quarterly numbers"
        kms.retire_grant(KeyId=key, GrantId=grant["GrantId"])
        refused = subprocess.run([KMSFS, "mount", cipher, mount_point], capture_output=True, text=True, env=env,
                                 stdin=subprocess.DEVNULL, timeout=60)
        assert refused.returncode != 0, refused.stderr


def audit_tail(server, *arguments):
    kmsd_bin = os.environ.get("KMSD_BIN") or os.path.join(os.path.dirname(__file__), "../../.build/debug/kmsd")
    out = subprocess.run([kmsd_bin, "audit", "tail", "--store", server.store, *arguments], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_the_key_pools_data_keys_can_be_hidden_or_grouped_in_the_audit(server):
    key = client(server, "kms", root(server)).create_key(Description="pooled")["KeyMetadata"]["Arn"]
    env = server.client_environment()
    with new_volume("kmsfs-pool-audit-", *server.volume_arguments(key), env=env) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, env=env):
            for name in ["a", "b", "c"]:
                with open(os.path.join(mount_point, name), "wb") as f:
                    f.write(b"x")
            deadline = time.time() + 20
            while True:  # the pool refills in the background; records are committed within 100 ms
                shown = [json.loads(line) for line in audit_tail(server, "--key", key, "--limit", "1000")]
                pooled = [r for r in shown if "(key-pool)" in r.get("userAgent", "")]
                if len(pooled) >= 16 or time.time() > deadline:
                    break
                time.sleep(0.2)
    # The mount is gone, but refills it had in flight may still be committing: compare snapshots
    # taken once the trail has stopped growing.
    previous = None
    for _ in range(50):
        shown = [json.loads(line) for line in audit_tail(server, "--key", key, "--limit", "1000")]
        if previous is not None and len(shown) == len(previous):
            break
        previous = shown
        time.sleep(0.3)
    pooled = [r for r in shown if "(key-pool)" in r.get("userAgent", "")]
    assert len(pooled) >= 16 and all(r["operation"] == "GenerateDataKey" for r in pooled)
    assert any(r.get("userAgent", "").startswith("kmsfs") and "(key-pool)" not in r["userAgent"] for r in shown), "the mount's own calls"
    hidden = [json.loads(line) for line in audit_tail(server, "--key", key, "--limit", "1000", "--key-pool", "hide")]
    assert hidden and not any("(key-pool)" in r.get("userAgent", "") for r in hidden)
    assert len(hidden) == len(shown) - len(pooled)
    grouped = audit_tail(server, "--key", key, "--limit", "1000", "--key-pool", "group", "--format", "text")
    summaries = [line for line in grouped if "key pool:" in line]
    assert summaries and sum(int(re.search(r"key pool: (\d+) ", line).group(1)) for line in summaries) == len(pooled)
    assert len(grouped) == len(hidden) + len(summaries)
