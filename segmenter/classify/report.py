"""metrics.html: a self-contained page (inline CSS, no scripts, no requests) of metrics.json."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:70rem;padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f6f8fa}
.note{color:#57606a}
"""

MODEL_TITLES = {
    "fine_tuned_encoder": "Fine-tuned encoder",
    "frozen_encoder_logistic_regression": "Frozen encoder + logistic regression",
    "behaviour_features_hist_gradient_boosting": "Behaviour features + gradient boosting",
}


def render_metrics_html(metrics: Mapping[str, Any]) -> str:
    """Render the metrics of a training run (see ``train_on_events``) as one HTML page."""
    models: Mapping[str, Mapping[str, Any]] = metrics["models"]
    task = metrics["task"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Customer classifier: test metrics</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Customer classifier: test metrics</h1>",
        f"<p class='note'>Labels from {escape(str(task['labels']))}; "
        f"{task['labelled_customers']} labelled customers ({task['labels_unknown_users']} "
        f"labels for users not in the events were left out): {task['n_train']} train, "
        f"{task['n_validation']} validation, {task['n_test']} test (stratified, seed "
        f"{escape(str(task['seed']))}).</p>",
        "<h2>Models on the test split</h2>",
        _summary(models),
    ]
    for key, result in models.items():
        title = MODEL_TITLES.get(key, key)
        parts += [f"<h2>{escape(title)}</h2>", _per_class(result), _confusion(result)]
    parts += ["<h2>Fine-tuning</h2>", _history(metrics["training"]), "</body></html>"]
    return "\n".join(parts) + "\n"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.3f}"
    elif value is None:
        text = "–"
    else:
        text = escape(str(value))
    return f"<td>{text}</td>"


def _summary(models: Mapping[str, Mapping[str, Any]]) -> str:
    rows = [
        (
            MODEL_TITLES.get(key, key),
            r["accuracy"],
            r["macro_f1"],
            r.get("roc_auc"),
            r.get("train_seconds"),
        )
        for key, r in models.items()
    ]
    return _table(("model", "accuracy", "macro-F1", "ROC AUC", "train seconds"), rows)


def _per_class(result: Mapping[str, Any]) -> str:
    rows = [
        (name, m["precision"], m["recall"], m["f1"], m["support"])
        for name, m in result["per_class"].items()
    ]
    return _table(("class", "precision", "recall", "F1", "support"), rows)


def _confusion(result: Mapping[str, Any]) -> str:
    names = list(result["per_class"])
    matrix: list[list[int]] = result["confusion_matrix"]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = []
    for name, row in zip(names, matrix, strict=True):
        total = max(sum(row), 1)
        cells = "".join(
            f"<td style='background:rgba(9,105,218,{0.75 * v / total:.2f})'>{v}</td>" for v in row
        )
        body.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    return (
        "<p class='note'>Confusion matrix: rows are true classes, columns predicted.</p>"
        f"<table><thead><tr><th>true \\ predicted</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _history(training: Mapping[str, Any]) -> str:
    history: list[Mapping[str, float]] = training["history"]
    note = (
        f"<p class='note'>{'LoRA adapters' if training['lora'] else 'Full fine-tuning'} on "
        f"{escape(str(training['device']))}, {training['n_steps']} steps; weights of epoch "
        f"{training['best_epoch']} kept (epoch 0: the starting weights, before any step).</p>"
    )
    rows = [
        (
            int(h["epoch"]),
            int(h["step"]),
            h.get("train_loss"),
            h.get("val_loss"),
            h.get("val_macro_f1"),
        )
        for h in history
    ]
    return note + _table(("epoch", "step", "train loss", "val loss", "val macro-F1"), rows)
