"""falcon-ollama: an Ollama-compatible server backed by OpenAI-compatible upstreams."""

__version__ = "0.1.0"
