"""The training path: a dataset in, verified artifact bytes out, with their holdout quality.

:func:`train` is what a training worker runs, for the service and for ``wisata-retrain`` alike:
the quality of each model on a seeded holdout (:func:`service.ml.evaluation.holdout_metrics`),
then every model fitted on all the data (:func:`service.ml.model_set.fit_model_set`) and
serialised with those metrics (:func:`build_artifacts`). Workers receive where the data is, and
for a hybrid built alone the stored bytes of its sub-models, never live objects; all that comes
back is bytes and timings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from service import artifacts
from service.artifacts import DatasetSummary
from service.ml.datasets import Dataset, load_dataset
from service.ml.evaluation import holdout_metrics
from service.ml.model_set import HybridWeight, ModelSet, fit_model_set, ordered_models
from service.ml.recommenders import (
    MODEL_NAMES,
    MOVED_MODULES,
    Collaborative,
    ContentBased,
    Hybrid,
    Recommender,
)

__all__ = ["BuildResult", "build_artifacts", "summarize", "train"]

_SUB_MODELS = (ContentBased.name, Collaborative.name)


@dataclass(frozen=True)
class BuildResult:
    """Artifact bytes by model name, the fit seconds of each, and what they were trained on."""

    artifacts: dict[str, bytes]
    seconds: dict[str, float]
    dataset: DatasetSummary


def summarize(dataset: Dataset) -> DatasetSummary:
    """The dataset facts an artifact records."""
    watermark = dataset.watermark
    latest = watermark.latest if watermark is not None else None
    return DatasetSummary(
        fingerprint=dataset.fingerprint(),
        items=dataset.n_items,
        users=dataset.n_users,
        interactions=dataset.n_interactions,
        rating_scale=(float(dataset.rating_range[0]), float(dataset.rating_range[1])),
        latest_rating_at=None if latest is None else _utc_text(latest),
        rows=None if watermark is None else watermark.rows,
    )


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def build_artifacts(
    data: str | Path | Dataset,
    models: Sequence[str] = MODEL_NAMES,
    *,
    key: bytes | None = None,
    hybrid_weight: HybridWeight = "auto",
    sub_artifacts: Mapping[str, bytes] | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    before_each: Callable[[str], object] | None = None,
    fitted: ModelSet | None = None,
) -> BuildResult:
    """Fit ``models`` on the dataset and return their artifacts.

    Parameters
    ----------
    data : path or Dataset
        The dataset directory (read here, in the worker) or an already loaded dataset.
    models : sequence of str
        Which models to build; the hybrid is built last, from the content and collaborative
        models fitted in the same call or else from ``sub_artifacts``.
    key : bytes or None
        HMAC key to sign the artifacts with (and to check ``sub_artifacts`` with).
    hybrid_weight : float or "auto"
        The hybrid's content weight.
    sub_artifacts : mapping, optional
        Stored artifacts of the sub-models, for building the hybrid alone from them.
    metrics : mapping, optional
        Holdout metrics to record in each model's artifact.
    before_each : callable, optional
        Called with each model's name before it is fitted.
    fitted : ModelSet, optional
        The models already fitted on ``dataset`` by another engine (the Spark engine's
        :func:`service.ml.spark_engine.fit_model_set`): serialised as they are.
    """
    order = ordered_models(models)
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    summary = summarize(dataset)
    given, checksums = _sub_models(sub_artifacts or {}, key)
    if fitted is None:
        fitted = fit_model_set(
            dataset, order, hybrid_weight=hybrid_weight, sub_models=given, before_each=before_each
        )
    built: dict[str, bytes] = {}
    for name in order:
        model = fitted.models[name]
        parents = {}
        if name == Hybrid.name:  # built from the two just fitted, or else from sub_artifacts
            parents = {parent: checksums[parent] for parent in _SUB_MODELS}
        built[name] = artifacts.dump(
            model,
            model_name=name,
            dataset=summary,
            training_seconds=fitted.seconds[name],
            metrics=(metrics or {}).get(name),
            parents=parents,
            params=_params(model),
            key=key,
        )
        checksums[name] = artifacts.read_header(built[name]).payload_sha256
    return BuildResult(artifacts=built, seconds=fitted.seconds, dataset=summary)


def train(
    data: str | Path | Dataset,
    models: Sequence[str] = MODEL_NAMES,
    *,
    key: bytes | None = None,
    hybrid_weight: HybridWeight = "auto",
    sub_artifacts: Mapping[str, bytes] | None = None,
    seed: int = 0,
) -> BuildResult:
    """Measure ``models`` on a holdout of the dataset, then build them with those metrics.

    The one training path: a job of the service runs it in a worker process.
    """
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    metrics = holdout_metrics(dataset, models, seed=seed, hybrid_weight=hybrid_weight)
    return build_artifacts(
        dataset,
        models,
        key=key,
        hybrid_weight=hybrid_weight,
        sub_artifacts=sub_artifacts,
        metrics=metrics,
    )


def _sub_models(
    stored: Mapping[str, bytes], key: bytes | None
) -> tuple[dict[str, Recommender], dict[str, str]]:
    """The sub-models in ``stored`` artifacts, verified, and their payload checksums."""
    models: dict[str, Recommender] = {}
    checksums: dict[str, str] = {}
    for name, data in stored.items():
        model, header = artifacts.load(data, key, expected_model=name, moved=MOVED_MODULES)
        assert isinstance(model, Recommender)
        models[name], checksums[name] = model, header.payload_sha256
    return models, checksums


def _params(model: Recommender) -> dict[str, str]:
    params = model.get_params(deep=False)
    text = {
        name: str(value) for name, value in params.items() if not isinstance(value, Recommender)
    }
    if isinstance(model, Hybrid):
        text["weights"] = ",".join(f"{w:g}" for w in model.weights_)
    return text
