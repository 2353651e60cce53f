"""Scenario suites and closed-loop safety evaluation: ``ScenarioSpec`` and its loaders, scenario
families and suites, criteria, metrics, the closed-loop runner, executors and reports."""
