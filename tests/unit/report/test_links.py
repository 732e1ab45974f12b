import pytest

from incident_responder.links import console_links
from tests.unit.report.samples import EXECUTION_ARN, JOB, make_event, make_evidence, subject_of

SFN_EVENT = dict(source="stepfunctions", training_job_name=None, training_job_arn=None, image_uri=None,
                 execution_arn=EXECUTION_ARN, status="FAILED",
                 state_machine_arn="arn:aws:states:us-west-2:123456789012:stateMachine:SpaceportMLPipeline")

CASES = [
    pytest.param({}, {}, {
        "training_job": f"https://us-west-2.console.aws.amazon.com/sagemaker/home?region=us-west-2#/jobs/{JOB}",
        "log_stream": "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2#logsV2:log-groups"
                      f"/log-group/$252Faws$252Fsagemaker$252FTrainingJobs/log-events/{JOB}$252Falgo-1-1764378580",
        "log_group": "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2#logsV2:log-groups"
                     "/log-group/$252Faws$252Fsagemaker$252FTrainingJobs",
        "execution": "https://us-west-2.console.aws.amazon.com/states/home?region=us-west-2#/v2/executions/details/"
                     + EXECUTION_ARN,
        "ecr_repository": "https://us-west-2.console.aws.amazon.com/ecr/repositories/private/123456789012/"
                          "spaceport/3dgs?region=us-west-2",
    }, id="sagemaker-with-all-evidence"),
    pytest.param(SFN_EVENT, dict(training_job=None, logs=None, image=None), {
        "execution": "https://us-west-2.console.aws.amazon.com/states/home?region=us-west-2#/v2/executions/details/"
                     + EXECUTION_ARN,
        "state_machine": "https://us-west-2.console.aws.amazon.com/states/home?region=us-west-2#/statemachines/view/"
                         "arn:aws:states:us-west-2:123456789012:stateMachine:SpaceportMLPipeline",
        "training_job": f"https://us-west-2.console.aws.amazon.com/sagemaker/home?region=us-west-2#/jobs/{JOB}",
        "log_group": "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2#logsV2:log-groups"
                     f"/log-group/$252Faws$252Fsagemaker$252FTrainingJobs$253FlogStreamNameFilter$253D{JOB}",
    }, id="pipeline-execution-knows-the-job-from-history"),
    pytest.param(dict(image_uri="nvidia/cuda:11.8.0-devel-ubuntu22.04"),
                 dict(logs=None, execution=None, image=None, training_job=None), {
        "training_job": f"https://us-west-2.console.aws.amazon.com/sagemaker/home?region=us-west-2#/jobs/{JOB}",
        "log_group": "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2#logsV2:log-groups"
                     f"/log-group/$252Faws$252Fsagemaker$252FTrainingJobs$253FlogStreamNameFilter$253D{JOB}",
    }, id="image-not-in-ecr-gets-no-repository-link"),
    pytest.param(dict(source="stepfunctions", training_job_name=None, image_uri=None, region="cn-north-1",
                      execution_arn="arn:aws-cn:states:cn-north-1:123456789012:execution:P:run-1"),
                 dict(logs=None, execution=None, image=None, training_job=None), {
        "execution": "https://console.amazonaws.cn/states/home?region=cn-north-1#/v2/executions/details/"
                     "arn:aws-cn:states:cn-north-1:123456789012:execution:P:run-1",
    }, id="china-partition-console"),
]


@pytest.mark.parametrize(("event_overrides", "evidence_overrides", "expected"), CASES)
def test_console_links_only_for_known_names(event_overrides, evidence_overrides, expected) -> None:
    event = make_event(**event_overrides)
    links = console_links(subject_of(event, make_evidence(event=event, **evidence_overrides)))
    assert links == expected
