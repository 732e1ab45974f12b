"""AWS console links for the things an incident names."""

from __future__ import annotations

import re
from urllib.parse import quote

from ..evidence.base import TRAINING_LOG_GROUP as SAGEMAKER_LOG_GROUP
from ..models import Evidence, FailureEvent

_ECR_HOST = re.compile(r"^(?P<registry>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


def console_base(region: str) -> str:
    if region.startswith("cn-"):
        return "https://console.amazonaws.cn"
    if region.startswith("us-gov-"):
        return "https://console.amazonaws-us-gov.com"
    return f"https://{region}.console.aws.amazon.com"


def _logs_fragment(value: str) -> str:
    # The CloudWatch console double-encodes path parts inside its #fragment: "/" -> "$252F".
    return quote(value, safe="").replace("%", "$25")


def _training_job_name(event: FailureEvent, evidence: Evidence) -> str | None:
    if event.training_job_name:
        return event.training_job_name
    if evidence.training_job is not None:
        return evidence.training_job.name
    if evidence.execution is not None:
        return evidence.execution.training_job_name
    return None


def _image_uri(event: FailureEvent, evidence: Evidence) -> str | None:
    if evidence.image is not None:
        return evidence.image.uri
    if evidence.training_job is not None and evidence.training_job.image_uri:
        return evidence.training_job.image_uri
    return event.image_uri


def _ecr_repository_link(image_uri: str, evidence: Evidence) -> str | None:
    match = _ECR_HOST.match(image_uri)
    if match is None:
        return None
    repository = evidence.image.repository if evidence.image and evidence.image.repository else None
    if repository is None:
        path = image_uri[match.end():]
        repository = re.split(r"[@:]", path, maxsplit=1)[0]
    region = match["region"]
    return f"{console_base(region)}/ecr/repositories/private/{match['registry']}/{repository}?region={region}"


def console_links(event: FailureEvent, evidence: Evidence) -> dict[str, str]:
    """Console URLs for the training job, its logs, the execution and the ECR repository.

    Only what is known gets a link; keys are stable: ``training_job``, ``log_stream``,
    ``log_group``, ``execution``, ``state_machine``, ``ecr_repository``.
    """
    region = event.region
    base = console_base(region)
    links: dict[str, str] = {}

    job = _training_job_name(event, evidence)
    if job:
        links["training_job"] = f"{base}/sagemaker/home?region={region}#/jobs/{quote(job, safe='')}"

    logs_home = f"{base}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
    if evidence.logs is not None:
        group = _logs_fragment(evidence.logs.group)
        stream = evidence.logs.primary_stream
        if stream:
            links["log_stream"] = f"{logs_home}{group}/log-events/{_logs_fragment(stream)}"
        links["log_group"] = f"{logs_home}{group}"
    elif job:
        # No log evidence, but SageMaker's naming convention still finds the job's streams.
        links["log_group"] = (
            f"{logs_home}{_logs_fragment(SAGEMAKER_LOG_GROUP)}"
            f"{_logs_fragment('?logStreamNameFilter=' + job)}"
        )

    execution_arn = event.execution_arn or (evidence.execution.execution_arn if evidence.execution else None)
    if execution_arn:
        links["execution"] = f"{base}/states/home?region={region}#/v2/executions/details/{execution_arn}"
    if event.state_machine_arn:
        links["state_machine"] = f"{base}/states/home?region={region}#/statemachines/view/{event.state_machine_arn}"

    image_uri = _image_uri(event, evidence)
    if image_uri:
        repository_link = _ecr_repository_link(image_uri, evidence)
        if repository_link:
            links["ecr_repository"] = repository_link
    return links
