"""``python -m fake_openai --port 8001``: run the fake upstream standalone."""

from ._cli import main

main()
