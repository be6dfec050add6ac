"""OpenGLM: a self-hosted implementation of the GLM-4 platform."""

__version__ = "0.1.0"
