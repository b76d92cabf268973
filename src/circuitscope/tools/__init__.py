"""Tools: the ``circuitscope`` command (``cli``), whole-layer galleries (``gallery``) and the
site build (``book``). May import any layer; nothing in the library imports a tool."""
