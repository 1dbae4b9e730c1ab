"""synthset: dataset distillation (DataDAM, DM) and coreset baselines."""
__version__ = "0.1.0"
