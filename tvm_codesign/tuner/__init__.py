"""The co-design tuner (issue 5, in progress): knob grids ranked by the analytical model."""
