"""Studies as configs: one YAML file names datasets, models, seeds and budgets; ``pfgraph study`` runs it."""
