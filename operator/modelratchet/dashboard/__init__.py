"""``modelratchet dashboard``: a local web UI of ModelRollouts (overview with live updates, one page per rollout
with its steps, metric charts, verdicts, conditions, Events and baseline), with the CLI's gate actions."""
