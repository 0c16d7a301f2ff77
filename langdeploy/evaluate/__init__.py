"""Model evaluation on in-house data: metrics, latency, bias probes and a report.

The CLI is ``langdeploy eval DATASET.jsonl --model A --model B``; from Python::

    from langdeploy.evaluate import EvalConfig, run_eval
    results = run_eval(EvalConfig(dataset=path, models=["smollm2-135m"], out_dir=out), settings)
"""

from langdeploy.evaluate.dataset import DatasetError, Example, load_dataset, parse_lines
from langdeploy.evaluate.run import EvalConfig, Progress, run_eval

__all__ = [
    "DatasetError",
    "EvalConfig",
    "Example",
    "Progress",
    "load_dataset",
    "parse_lines",
    "run_eval",
]
