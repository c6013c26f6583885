"""Explanations: why a customer is in its segment, and what defines a segment.

* :class:`Explainer` -- per customer: behaviour contributions that add up to the decision margin
  (exact), text evidence by occlusion (approximate), a counterfactual on actionable features;
* :func:`explain_all` -- every customer's top reasons (``explanations.parquet``);
* :mod:`segmenter.explain.surrogate` -- per segment: depth-3 rules with their held-out fidelity,
  and SHAP importance from a gradient-boosted surrogate.
"""

from __future__ import annotations

from segmenter.explain.batch import explain_all
from segmenter.explain.customer import Explainer, Explanation

__all__ = ["Explainer", "Explanation", "explain_all"]
