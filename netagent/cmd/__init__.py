"""Console scripts. Only this package decides to exit."""
