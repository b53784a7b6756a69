"""The ML layer: datasets, recommenders, the holdout, metrics, the model set; no HTTP or storage."""
