"""The errors a user's input can cause, torch-free, so that the CLI can turn each into a clear message (exit 1)
without importing the modules that raise them: the data commands then run without torch in memory (a
FashionGen conversion's process was 955 MiB with it, 250 without)."""


class ModelInputError(ValueError):
    """A model input (checkpoint, tokenizer, patch labels) is missing or does not fit; raised before training."""


class ProtocolError(ValueError):
    """The data cannot meet a protocol (e.g. a subcategory with fewer than 1 + negatives items)."""


class ParityError(ValueError):
    """ONNX Runtime's outputs differ from PyTorch's by more than the tolerance."""
