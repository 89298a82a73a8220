"""ONNX export of a model family (encoders and fused task heads) with a PyTorch-vs-ONNX Runtime parity check."""
