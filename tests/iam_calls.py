"""Every AWS call our code makes, as the IAM authorisations AWS would make for it, enforced in tests.

moto checks no IAM on DynamoDB's resources (5.2: a policy naming a table denies every call on it, as moto sees the
resource as `*`), so `enforcing` wraps botocore's one call path instead: each call becomes its IAM requests (action,
resource ARN, condition keys: `iam_requests`), `tests/iam_policies.py` decides them under a principal's policies,
and a denied one raises the AccessDeniedException AWS would return, before the call reaches moto. What our code does
with that error is then what it would do on AWS; the denials are also kept, so no handler can swallow one unseen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import botocore.client
from botocore.exceptions import ClientError

from iam_policies import ALLOWED, Request, decide

ACCOUNT = "123456789012"  # moto's default account: the central account of the tests

# botocore service names whose IAM prefix differs
_PREFIXES = {"dynamodbstreams": "dynamodb", "sso-admin": "sso", "monitoring": "cloudwatch"}

# S3 operations authorised under another action's name (AWS's "Actions, resources and condition keys for S3")
_S3_ACTIONS = {
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "HeadObject": "GetObject",
    "DeleteObjects": "DeleteObject",
    "ListObjectVersions": "ListBucketVersions",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "DeleteBucketPolicy": "DeleteBucketPolicy",
}

# SQS batch operations are authorised as the single-message action
_SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}

# A transaction's parts are authorised one by one, each as the single-item action
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_action(service: str, operation: str) -> str:
    """The IAM action of a botocore operation (`dynamodb:Query`, `s3:ListBucket` for ListObjectsV2)."""
    prefix = _PREFIXES.get(service, service)
    if prefix == "s3":
        operation = _S3_ACTIONS.get(operation, operation)
    if prefix == "sqs":
        operation = _SQS_ACTIONS.get(operation, operation)
    return f"{prefix}:{operation}"


# Authorised by no IAM action at all (AWS: "No permissions are required to perform this operation")
_UNAUTHORISED = {("sts", "GetCallerIdentity")}


def iam_requests(
    service: str, operation: str, params: Mapping[str, Any], region: str, account: str = ACCOUNT
) -> list[Request]:
    """The authorisations AWS makes for one call (a transaction or batch: one per item's table and action), in
    `account` (the account of the client's credentials: moto's default, the central account of these tests)."""
    if (service, operation) in _UNAUTHORISED:
        return []
    action = iam_action(service, operation)
    if service == "cloudformation":
        return _cloudformation(action, operation, params, region, account)
    if service in _DEPLOYER_SERVICES:
        return _DEPLOYER_SERVICES[service](action, operation, params, region, account)
    if service == "dynamodb":
        return _dynamodb(action, operation, params, region)
    if service == "dynamodbstreams":
        arn = params.get("StreamArn")
        return [Request(action, arn or "*")]  # GetRecords: our code never reads a stream; Lambda's mapping does
    if service == "sqs":
        url = params.get("QueueUrl")
        name = urlparse(url).path.rsplit("/", 1)[-1] if url else params.get("QueueName")
        return [Request(action, f"arn:aws:sqs:{region}:{account}:{name}" if name else "*")]
    if service == "s3":
        return _s3(action, params)
    if service == "glue":
        return _glue(action, params, region)
    if service == "firehose" and "DeliveryStreamName" in params:
        return [Request(action, f"arn:aws:firehose:{region}:{account}:deliverystream/{params['DeliveryStreamName']}")]
    if service == "athena" and "WorkGroup" in params:
        return [Request(action, f"arn:aws:athena:{region}:{ACCOUNT}:workgroup/{params['WorkGroup']}")]
    return [Request(action, "*")]


def _table(region: str, name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"


def _dynamodb(action: str, operation: str, params: Mapping[str, Any], region: str) -> list[Request]:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        requests = []
        for item in params["TransactItems"]:
            ((kind, part),) = item.items()
            single = "GetItem" if kind == "Get" else _TRANSACT_ACTIONS[kind]
            requests.append(Request(f"dynamodb:{single}", _table(region, part["TableName"])))
        return requests
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [Request(action, _table(region, name)) for name in params["RequestItems"]]
    if "TableName" not in params:
        return [Request(action, "*")]  # ListTables
    table = _table(region, params["TableName"])
    return [Request(action, f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table)]


def _s3(action: str, params: Mapping[str, Any]) -> list[Request]:
    bucket = params.get("Bucket")
    if bucket is None:
        return [Request(action, "*")]  # ListBuckets
    if action in ("s3:ListBucket", "s3:ListBucketVersions"):
        return [Request(action, f"arn:aws:s3:::{bucket}", {"s3:prefix": params.get("Prefix", "")})]
    if action == "s3:DeleteObject" and "Delete" in params:  # a named version: s3:DeleteObjectVersion
        return [
            Request(f"{action}Version" if "VersionId" in o else action, f"arn:aws:s3:::{bucket}/{o['Key']}")
            for o in params["Delete"]["Objects"]
        ]
    if "Key" in params:
        requests = [Request(action, f"arn:aws:s3:::{bucket}/{params['Key']}")]
        if "CopySource" in params:
            source = params["CopySource"]
            path = f"{source['Bucket']}/{source['Key']}" if isinstance(source, Mapping) else source.lstrip("/")
            requests.append(Request("s3:GetObject", f"arn:aws:s3:::{path}"))
        return requests
    return [Request(action, f"arn:aws:s3:::{bucket}")]


def _glue(action: str, params: Mapping[str, Any], region: str) -> list[Request]:
    """Glue authorises a table call on the catalog, the database and the table together."""
    base = f"arn:aws:glue:{region}:{ACCOUNT}"
    resources = [f"{base}:catalog"]
    database = params.get("DatabaseName") or (params.get("Name") if "Database" in action else None)
    if database:
        resources.append(f"{base}:database/{database}")
    table = params.get("TableName") or (params.get("Name") if action.endswith(("Table", "Tables")) else None)
    if database and table:
        resources.append(f"{base}:table/{database}/{table}")
    return [Request(action, r) for r in resources]


# --- what the deployer (deploy.py) calls ------------------------------------------------------------------------
# AWS's Service Authorization Reference, per service: the resource each action is authorised on, and the further
# actions some operations need (tags given on create: TagResource; a role given to a service: iam:PassRole).

STACK_SET_ID = "00000000-0000-0000-0000-000000000000"  # a StackSet's ARN ends in its id, unknown to the request
_NEW = "(new)"  # what a create will name: not known before it answers
# StackSet operations on instances are authorised on the StackSet and on each target (OU or account) x region
_STACK_SET_TARGETED = {"CreateStackInstances", "UpdateStackInstances", "DeleteStackInstances"}
_TAGGED_ON_CREATE = {"CreateChangeSet", "CreateStack", "UpdateStack", "CreateStackSet", "UpdateStackSet"}


def _cloudformation(action: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    """Stacks by name or id (a change set: its stack's), StackSets by name; with a template body alone, `*`."""
    base = f"arn:aws:cloudformation:{region}:{account}"
    name = params.get("StackSetName")
    if name:
        stack_set = f"{base}:stackset/{name}:{STACK_SET_ID}"
        requests = [Request(action, "*" if operation == "CreateStackSet" else stack_set)]
        if operation in _STACK_SET_TARGETED:
            targets = params.get("DeploymentTargets", {})
            for target in [*targets.get("OrganizationalUnitIds", []), *targets.get("Accounts", [])]:
                for target_region in params.get("Regions", []):
                    arn = f"arn:aws:cloudformation:{target_region}:{account}:stackset-target/{name}:{STACK_SET_ID}"
                    requests.append(Request(action, f"{arn}/{target}"))
    else:
        stack = params.get("StackName")
        if not stack:
            return [Request(action, "*")]  # ValidateTemplate, GetTemplateSummary of a body, ListStacks
        arn = stack if stack.startswith("arn:") else f"{base}:stack/{stack}/{_NEW}"
        requests = [Request(action, arn)]
        stack_set = arn
    if operation in _TAGGED_ON_CREATE and params.get("Tags"):
        requests.append(Request("cloudformation:TagResource", stack_set))
    return requests


def _sts(action: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    return [Request(action, params.get("RoleArn", "*"))]


def _organizations(action: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    if operation == "EnableAWSServiceAccess":
        return [Request(action, "*", {"organizations:ServicePrincipal": params["ServicePrincipal"]})]
    return [Request(action, "*")]


def _events(action: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    name = params.get("Name") or params.get("EventBusName")
    return [Request(action, f"arn:aws:events:{region}:{account}:event-bus/{name}" if name else "*")]


def _oam(action: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    """A sink by its ARN; creating one (and tagging it on create) names no resource."""
    sink = params.get("SinkIdentifier") or params.get("Identifier") or params.get("ResourceArn")
    requests = [Request(action, sink or "*")]
    if operation == "CreateSink" and params.get("Tags"):
        requests.append(Request("oam:TagResource", "*"))
    return requests


def _grafana(action: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    """A workspace by its id. CreateWorkspace also needs: TagResource (tags), iam:PassRole (a customer-managed
    role), Identity Center's application actions (AWS_SSO sign-in), organizations:DescribeOrganization
    (ORGANIZATION access); DeleteWorkspace removes the Identity Center application."""
    workspaces = f"arn:aws:grafana:{region}:{account}:/workspaces"
    if operation != "CreateWorkspace":
        requests = [Request(action, f"{workspaces}/{params['workspaceId']}" if "workspaceId" in params else "*")]
        if operation == "DeleteWorkspace":
            requests.append(Request("sso:DeleteManagedApplicationInstance", "*"))
        return requests
    requests = [Request(action, "*")]
    if params.get("tags"):
        requests.append(Request("grafana:TagResource", f"{workspaces}/{_NEW}"))
    if params.get("workspaceRoleArn"):
        passed = {"iam:PassedToService": "grafana.amazonaws.com"}
        requests.append(Request("iam:PassRole", params["workspaceRoleArn"], passed))
    if "AWS_SSO" in params.get("authenticationProviders", []):
        for sso in ("CreateManagedApplicationInstance", "DescribeRegisteredRegions", "GetSharedSsoConfiguration"):
            requests.append(Request(f"sso:{sso}", "*"))
    if params.get("accountAccessType") == "ORGANIZATION":
        requests.append(Request("organizations:DescribeOrganization", "*"))
    return requests


def _cloudwatch(action: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    """Alarms by name (DescribeAlarms of named metric alarms, PutMetricAlarm, DeleteAlarms: `alarm*`); tags given on
    PutMetricAlarm also need TagResource (CloudWatch's "Alarms and tagging")."""
    names = params.get("AlarmNames") or ([params["AlarmName"]] if "AlarmName" in params else [])
    if not names:
        return [Request(action, "*")]
    requests = [Request(action, f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}") for name in names]
    if operation == "PutMetricAlarm" and params.get("Tags"):
        requests.append(Request("cloudwatch:TagResource", requests[0].resource))
    return requests


def _sns(action: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    """A topic by its ARN (CreateTopic: the ARN its name gives); tags on CreateTopic also need TagResource."""
    arn = params.get("TopicArn") or (f"arn:aws:sns:{region}:{account}:{params['Name']}" if "Name" in params else "*")
    requests = [Request(action, arn)]
    if operation == "CreateTopic" and params.get("Tags"):
        requests.append(Request("sns:TagResource", arn))
    return requests


# The service-linked role Application Auto Scaling creates, with the caller's permission, at a namespace's first target
_SCALING_ROLE_SERVICES = {"dynamodb": "dynamodb.application-autoscaling.amazonaws.com"}
_SCALING_ROLES = {"dynamodb": "AWSServiceRoleForApplicationAutoScaling_DynamoDBTable"}


def _application_autoscaling(
    action: str, operation: str, params: Mapping[str, Any], region: str, account: str
) -> list[Request]:
    """Scalable targets get ids AWS assigns, so `*`; registering one without a RoleARN also needs
    iam:CreateServiceLinkedRole on the namespace's role, with its service as `iam:AWSServiceName` (Application Auto
    Scaling's "Service-linked roles")."""
    requests = [Request(action, "*")]
    namespace = params.get("ServiceNamespace", "")
    if operation == "RegisterScalableTarget" and "RoleARN" not in params and namespace in _SCALING_ROLES:
        service = _SCALING_ROLE_SERVICES[namespace]
        role = f"arn:aws:iam::{account}:role/aws-service-role/{service}/{_SCALING_ROLES[namespace]}"
        requests.append(Request("iam:CreateServiceLinkedRole", role, {"iam:AWSServiceName": service}))
    return requests


_DEPLOYER_SERVICES = {
    "sts": _sts,
    "organizations": _organizations,
    "events": _events,
    "oam": _oam,
    "grafana": _grafana,
    "cloudwatch": _cloudwatch,
    "sns": _sns,
    "application-autoscaling": _application_autoscaling,
}


@dataclass
class Principal:
    """Who makes the calls: a name for the messages and the policies IAM evaluates."""

    name: str
    policies: Sequence[Mapping[str, Any]]
    requests: list[Request] = field(default_factory=list)
    denied: list[Request] = field(default_factory=list)

    def actions(self) -> set[str]:
        """Every action the principal was authorised for, in any call."""
        return {r.action for r in self.requests}


_acting: list[Principal] = []


@contextmanager
def enforcing(monkeypatch: Any) -> Iterator[None]:
    """Every botocore call in the block is authorised against the principal of `acting_as` (calls outside any
    `acting_as` pass unchecked: the test's own setup and reads)."""
    original = botocore.client.BaseClient._make_api_call

    def authorised_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if _acting:
            principal = _acting[-1]
            service = client.meta.service_model.service_name
            for request in iam_requests(service, operation, params, client.meta.region_name):
                principal.requests.append(request)
                if decide(request, principal.policies) != ALLOWED:
                    principal.denied.append(request)
                    message = f"User: {principal.name} is not authorized to perform: {request}"
                    raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": message}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", authorised_call)
    try:
        yield
    finally:  # a failing block too: the test's own teardown reads without the check
        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", original)


@contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """The calls in the block (from any thread: the views' writer pool too) are the principal's."""
    _acting.append(principal)
    try:
        yield principal
    finally:
        _acting.remove(principal)
