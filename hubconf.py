"""torch.hub entry points: every registered reslab model.

    torch.hub.load("OWNER/reslab", "resnet56", pretrained="akamaster")   # from GitHub
    torch.hub.load("/path/to/reslab", "resnet20", source="local")         # from a checkout

``pretrained`` is False (default), True (the model's default published weights) or a
source name (``reslab weights list``); other keyword arguments go to
``reslab.create_model``.  Only models with published weights accept ``pretrained``.
"""

dependencies = ["torch"]

import os as _os  # noqa: E402
import sys as _sys  # noqa: E402

# Loaded from a checkout (torch.hub clones the repo; source="local" reads it in place):
# import reslab from its src/ folder rather than any installed copy.
_SRC = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src")
if _os.path.isdir(_os.path.join(_SRC, "reslab")) and _SRC not in _sys.path:
    _sys.path.insert(0, _SRC)

from reslab.models.registry import MODELS as _MODELS  # noqa: E402
from reslab.weights.builder import create_model as _create_model  # noqa: E402
from reslab.weights.sources import sources_for as _sources_for  # noqa: E402


def _entry(name):
    def entry(pretrained=False, **kwargs):
        return _create_model(name, pretrained=pretrained, **kwargs)

    have = _sources_for(name)
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (f"reslab.create_model({name!r}, pretrained=..., **kwargs).  Published weights: "
                     + (", ".join(have) + " (pretrained=True picks the first)" if have else "none") + ".")
    return entry


for _name in _MODELS:
    globals()[_name] = _entry(_name)
