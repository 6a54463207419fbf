"""The release's version, in one place: the package, the JSON report and the build read it."""

__version__ = "0.1.0"
