"""The agent: wake loop, phase policies, budget ledger, guardrails, runbook."""
