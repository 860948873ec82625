"""What the reference implementation takes per row on the churn forest: shap's
TreeExplainer (C++ path-dependent TreeSHAP) on the same forest the churn bundle exports,
retrained exactly as models/make_churn_model.py trains it, on the first rows of
tests/fixtures/churn/customers-10k.csv. Compare with `argus-bench evidence` stage 1's
tree_shap line (docs/bench.md).

    pip install -r models/requirements.txt
    python bench/shap_cost.py
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))

import shap  # noqa: E402

import make_evidence_fixtures as fixtures  # noqa: E402

ROWS = 200


def main() -> None:
    case = fixtures.churn_case()
    explainer = shap.TreeExplainer(case.est)
    x = case.check_rows[:ROWS]
    explainer.shap_values(x[:5])  # warm-up
    t = time.perf_counter()
    for i in range(ROWS):
        explainer.shap_values(x[i : i + 1])
    one = (time.perf_counter() - t) / ROWS
    t = time.perf_counter()
    explainer.shap_values(x)
    batch = (time.perf_counter() - t) / ROWS
    print(f"shap {shap.__version__} TreeExplainer on the churn forest, {ROWS} rows: "
          f"{one * 1e3:.2f} ms per row one at a time, {batch * 1e3:.2f} ms per row in one call")


if __name__ == "__main__":
    main()
