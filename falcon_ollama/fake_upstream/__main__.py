"""``python -m falcon_ollama.fake_upstream --port 8001``: run the fake upstream standalone."""

from ._cli import main

main()
