"""CueFarm: the shared library (protocol, client API, job spec, frame ranges, config)."""

from cuefarm.client import Client, CueFarmError, Events, Unreachable

__version__ = "0.1.0"
__all__ = ["Client", "CueFarmError", "Events", "Unreachable", "__version__"]
