"""mf_core: the Modality Forcing model and its maths (no ROS, no training-only imports)."""

__version__ = "0.1.0"
