"""Rollback to the last known-good training image: the ledger (by digest), the proposal, the
Step Functions workflow's input, and the decision (Slack, signed link, CLI) that resumes it."""
