"""Export a run for serving (`winnow export`): an ONNX or TorchScript file plus its preprocessing contract.

`winnow.export.exporter.export_run` writes the model; `winnow.export.sidecar` the JSON beside it;
`winnow.export.backend.OnnxPredictor` runs an exported ONNX file with onnxruntime behind the same
calibration, thresholds and decisions as the PyTorch predictor (`winnow predict --backend onnx`).
"""
