"""Models: one registry (name -> builder, representation) for image and point-cloud models."""
