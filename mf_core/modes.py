"""How LiDAR makes depth metric: the mode vocabulary every boundary shares (torch-free, so CLIs and
launch files can offer the choices without importing the model).

- ``i2d``: image only, relative depth (unit mean);
- ``i2d-aligned``: image only, then scale and shift fitted to the LiDAR;
- ``guided``: LiDAR steers the sampler;
- ``conditioned``: LiDAR is an input of the depth stream (what the shipped model is trained for);
- ``classical`` (nodes and ``mf densify`` only): the IP-Basic LiDAR completion, no model.
"""

MODES = ("i2d", "i2d-aligned", "guided", "conditioned")
LIDAR_MODES = ("i2d-aligned", "guided", "conditioned")
NODE_MODES = (*LIDAR_MODES, "classical")
DEFAULT_MODE = "conditioned"
DEVICES = ("cpu", "cuda")


def recommended_mode(metadata: dict, depth_conditioned: bool) -> str:
    """The mode a checkpoint's metadata recommends, else the one its architecture suits: ``conditioned``
    for a model with a LiDAR input, ``guided`` otherwise."""
    return metadata.get("recommended_mode") or ("conditioned" if depth_conditioned else "guided")
