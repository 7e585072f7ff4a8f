"""Using a trained network: predict new cases, score it on other data, export it.

Example:
    >>> net = load_network("studies/quickstart.yaml#3")                     # doctest: +SKIP
    >>> predict_path(net, "new_images/", "masks/")                           # doctest: +SKIP
    >>> evaluate_network(net, "other_dataset/", out_dir="eval/")             # doctest: +SKIP
    >>> export_network(net, "onnx", "model.onnx").max_abs_diff < 1e-4       # doctest: +SKIP
"""
from nasseg.infer.export import ExportResult, export_network
from nasseg.infer.network import Network, load_network
from nasseg.infer.predict import predict_path
from nasseg.infer.score import evaluate_network

__all__ = ["ExportResult", "Network", "evaluate_network", "export_network", "load_network", "predict_path"]
