"""Core: what every chapter stands on.

The model and its weights (``models``), named activations (``hooks``), images and image streams
(``images``, ``datasets``), the device and its profile (``device``, ``distributed``), where
results come from (``provenance``, ``registry``, ``published``), and small facts about the
network (``class_labels``, ``receptive_field``). Nothing here imports from ``methods``,
``figures`` or ``tools`` (``tests/test_architecture.py``).
"""
