"""Using a trained model: preprocessing, prediction, evaluation, labels and attention maps."""
