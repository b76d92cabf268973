"""Methods: one module per idea of the Circuits thread and after.

Feature visualization (``optvis``), circuits and expanded weights (``circuits``, ``branches``,
``ablation``), stimuli and tuning curves (``stimuli``), a circuit with a known answer
(``planted``), dataset examples (``dataset_examples``), polysemanticity, superposition's toy
models (``superposition``), sparse autoencoders (``sae``, ``sae_eval``, ``feature_splitting``).
Each takes a named model and returns numbers; drawing them is the ``figures`` layer's work.
Imports only from ``core`` and from ``methods``.
"""
