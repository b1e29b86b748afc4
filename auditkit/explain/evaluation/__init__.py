"""Is a saliency map trustworthy? Localisation, faithfulness, sanity checks, shortcuts, stability.

Per-image scores are pure NumPy (``localization``, ``similarity``,
``shortcut``); the checks that must run the model (``faithfulness``,
``sanity``, ``stability``) take it and an attribution function. Aggregation
over images with a bootstrap confidence interval is in ``bootstrap``.
"""
