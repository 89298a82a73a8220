"""Pipeline stages as plain functions: the CLI, the Prefect flows and dvc.yaml are thin callers."""
