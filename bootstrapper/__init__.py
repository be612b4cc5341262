"""bootstrapper: rebuild a whole Python dependency tree from source into a static index."""

__version__ = "0.1.0"
