"""GitHub Actions as a failure source: the `workflow_run` webhook (webhook.py, pure), replay dedupe on
X-GitHub-Delivery (deliveries.py), a small REST client (api.py) and the evidence analyzer (evidence.py).

GitHub deliveries are not EventBridge events: they never pass through intake.parse_event. A verified
delivery becomes a FailureEvent and goes to respond.handle_failure (handlers/github_webhook.py).
"""
