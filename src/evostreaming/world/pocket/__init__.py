"""The pocket model's recipe: ShapesWorld training data, the vision stage, training and offline metrics."""
