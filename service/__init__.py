"""Wisata: travel-destination recommenders whose trained models survive restarts (the service)."""
