"""Online serving of an exported bundle: FastAPI + ONNX Runtime (no torch at run time)."""
