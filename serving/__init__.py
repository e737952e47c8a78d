"""Serving: recommendations over HTTP from the ONNX user tower and a per-version ANN index."""
