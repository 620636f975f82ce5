"""reslab: residual networks, their plain twins, and the depth problems they solve."""

__version__ = "0.1.0"

from reslab.errors import DataFormatError, ReslabError  # noqa: E402
from reslab.models import create_model, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "ReslabError", "DataFormatError"]
