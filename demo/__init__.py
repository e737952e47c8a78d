"""The end-to-end demo: default synthetic data, the orchestration of all components, the report."""
