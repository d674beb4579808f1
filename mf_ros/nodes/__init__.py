"""ROS 2 nodes: ``depth_node`` (camera + LiDAR -> dense depth) and ``recorder_node`` (synced training bags).

The helpers beside them (sync, latest-frame worker, extrinsics, stats, parameters) are small
and rclpy-light so that the offline ``mf densify`` can reuse the sync and the pipeline.
"""
