"""Modelling: point-in-time features and labels, estimators (scikit-learn and BTYD), out-of-time
metrics and the model registry. Never imports scores/traits, publishing or the workflows."""
