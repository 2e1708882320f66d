"""The built-in ranking-model codebase: data, feature processing, models, trainer, metrics.

It is one target among others for the agent and never imports the agent's packages.
"""
