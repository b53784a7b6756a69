"""The command-line jobs run outside the web process: retrain, status, backup and db."""
