"""The model registry side of a rollout: the alias that names the candidate, and the verdicts written back.

``core`` is pure (resolution result -> candidate checkpoint, verdict -> recorded writes, results -> status);
``mlflow`` is the thin REST client; the reconciler's shell (``modelratchet.effects``) joins them.
"""
