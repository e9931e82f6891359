"""The co-design tuner: joint search over accelerator configs and per-layer schedules (see run.py)."""
