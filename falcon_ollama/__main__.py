"""``python -m falcon_ollama`` is the ``falcon-ollama`` command."""

from falcon_ollama.cli import main

raise SystemExit(main())
