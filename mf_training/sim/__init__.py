"""Synthetic camera + spinning LiDAR scenes by Open3D ray casting, written as rosbag2 MCAP.

config.py     SimConfig: every option of ``mf sim``, validated (InputError)
options.py    the command-line options of ``mf sim`` / ``mf bench sim`` -> SimConfig
shapes.py     boxes, cylinders, spheres as Open3D triangle meshes placed in the world
scene.py      Scene: one RaycastingScene + a material table indexed by geometry id
street.py     procedural street: road, sidewalks, buildings, cars, poles, trees (sky above)
indoor.py     procedural room: floor, walls, ceiling, tables, shelves, columns, balls
trajectory.py smooth vehicle / walker paths: base_link pose at any time
rig.py        camera and LiDAR mounting on base_link (the extrinsics written to /tf_static)
shading.py    numba kernels per ray hit: textures, Lambert, sky -> image + z-depth; LiDAR intensity
camera_render.py  camera rays once per camera
lidar.py      spinning multi-beam LiDAR: beam directions, range noise, max range
generator.py  Simulator: one frame = camera image + GT depth + LiDAR sweep from one cast;
              generate_frames renders in worker processes when asked
bag_output.py frames -> MCAP bag through mf_ros.conversions / mf_ros.bags
"""
