"""AWS console links for what an incident is about (its Subject)."""

from __future__ import annotations

from urllib.parse import quote

from .models import Subject


def console_base(region: str) -> str:
    if region.startswith("cn-"):
        return "https://console.amazonaws.cn"
    if region.startswith("us-gov-"):
        return "https://console.amazonaws-us-gov.com"
    return f"https://{region}.console.aws.amazon.com"


def _logs_fragment(value: str) -> str:
    # The CloudWatch console double-encodes path parts inside its #fragment: "/" -> "$252F".
    return quote(value, safe="").replace("%", "$25")


def console_links(subject: Subject) -> dict[str, str]:
    """Console URLs for the training job, its logs, the execution and the ECR repository.

    Only what is known gets a link; keys are stable: ``training_job``, ``log_stream``,
    ``log_group``, ``execution``, ``state_machine``, ``ecr_repository``, ``build``, ``stack_events``,
    ``workflow_run``.
    """
    region = subject.region
    base = console_base(region)
    links: dict[str, str] = {}

    job = subject.training_job_name
    if job:
        links["training_job"] = f"{base}/sagemaker/home?region={region}#/jobs/{quote(job, safe='')}"

    logs_home = f"{base}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
    # A GitHub run's logs are GitHub's, not CloudWatch's (its job links say where they are).
    if subject.log_group and not subject.repository:
        group = _logs_fragment(subject.log_group)
        if subject.log_streams:
            links["log_stream"] = f"{logs_home}{group}/log-events/{_logs_fragment(subject.log_streams[0])}"
            links["log_group"] = f"{logs_home}{group}"
        elif job:
            # No stream found yet, but SageMaker's naming convention still finds the job's streams.
            links["log_group"] = f"{logs_home}{group}{_logs_fragment('?logStreamNameFilter=' + job)}"
        else:
            links["log_group"] = f"{logs_home}{group}"

    if subject.execution_arn:
        links["execution"] = f"{base}/states/home?region={region}#/v2/executions/details/{subject.execution_arn}"
    if subject.state_machine_arn:
        links["state_machine"] = f"{base}/states/home?region={region}#/statemachines/view/{subject.state_machine_arn}"

    if subject.build_arn and subject.project_name:
        links["build"] = (f"{base}/codesuite/codebuild/{subject.account or '-'}/projects/"
                          f"{quote(subject.project_name, safe='')}/build/{quote(subject.build_id or '', safe='')}"
                          f"/?region={region}")
    if subject.stack_id:
        links["stack_events"] = (f"{base}/cloudformation/home?region={region}#/stacks/events?"
                                 f"stackId={quote(subject.stack_id, safe='')}")
    if subject.run_url:
        links["workflow_run"] = subject.run_url

    image = subject.image
    if image is not None and image.is_ecr:
        links["ecr_repository"] = (f"{console_base(image.region)}/ecr/repositories/private/{image.registry}/"
                                   f"{image.repository}?region={image.region}")
    return links
